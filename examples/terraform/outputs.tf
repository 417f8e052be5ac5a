output "client_id" {
  description = "The machine client's id."
  value       = keycloak_openid_client.machine.client_id
}

output "client_secret" {
  description = "Its secret: put it in your secret store (terraform output -raw client_secret)."
  value       = keycloak_openid_client.machine.client_secret
  sensitive   = true
}

output "token_url" {
  description = "Where the client gets its tokens (client_credentials)."
  value       = "${var.keycloak_url}/realms/${var.realm}/protocol/openid-connect/token"
}
