# A machine client of the orders API, as code: a confidential client with
# only the client-credentials grant, the API's audience, a scope of its own,
# and realm and client roles for its service account. It is the Terraform
# form of what examples/keycloak/realm-demo.json declares for reports-job.

provider "keycloak" {
  url       = var.keycloak_url
  realm     = "master"
  client_id = "admin-cli"
  username  = var.admin_username
  password  = var.admin_password
}

data "keycloak_realm" "api" {
  realm = var.realm
}

# The resource server: its client roles are what callers receive.
data "keycloak_openid_client" "orders_api" {
  realm_id  = data.keycloak_realm.api.id
  client_id = "orders-api"
}

data "keycloak_role" "api_client" {
  realm_id = data.keycloak_realm.api.id
  name     = "api-client"
}

data "keycloak_role" "reader" {
  realm_id  = data.keycloak_realm.api.id
  client_id = data.keycloak_openid_client.orders_api.id
  name      = "reader"
}

# The scopes of the realm export that the client gets by default.
data "keycloak_openid_client_scope" "defaults" {
  for_each = toset(["basic", "roles", "acr", "profile", "service_account", "orders:read"])
  realm_id = data.keycloak_realm.api.id
  name     = each.key
}

# A client scope with an Audience mapper: without it the tokens do not name
# orders-api in aud and the gateway refuses them (401 wrong_audience).
resource "keycloak_openid_client_scope" "audience" {
  realm_id               = data.keycloak_realm.api.id
  name                   = "${var.client_id}-orders-api-audience"
  description            = "Puts orders-api into the aud of ${var.client_id}'s tokens."
  include_in_token_scope = false
}

resource "keycloak_openid_audience_protocol_mapper" "orders_api" {
  realm_id                 = data.keycloak_realm.api.id
  client_scope_id          = keycloak_openid_client_scope.audience.id
  name                     = "audience orders-api"
  included_client_audience = data.keycloak_openid_client.orders_api.client_id
  add_to_access_token      = true
  add_to_id_token          = false
}

resource "keycloak_openid_client" "machine" {
  realm_id    = data.keycloak_realm.api.id
  client_id   = var.client_id
  name        = "Inventory sync (managed by Terraform)"
  access_type = "CONFIDENTIAL"

  service_accounts_enabled     = true
  standard_flow_enabled        = false
  implicit_flow_enabled        = false
  direct_access_grants_enabled = false
  access_token_lifespan        = "300"
}

resource "keycloak_openid_client_default_scopes" "machine" {
  realm_id  = data.keycloak_realm.api.id
  client_id = keycloak_openid_client.machine.id
  default_scopes = concat(
    [for s in data.keycloak_openid_client_scope.defaults : s.name],
    [keycloak_openid_client_scope.audience.name],
  )
}

resource "keycloak_openid_client_service_account_realm_role" "api_client" {
  realm_id                = data.keycloak_realm.api.id
  service_account_user_id = keycloak_openid_client.machine.service_account_user_id
  role                    = data.keycloak_role.api_client.name
}

resource "keycloak_openid_client_service_account_role" "reader" {
  realm_id                = data.keycloak_realm.api.id
  service_account_user_id = keycloak_openid_client.machine.service_account_user_id
  client_id               = data.keycloak_openid_client.orders_api.id
  role                    = data.keycloak_role.reader.name
}
