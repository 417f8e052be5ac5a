variable "keycloak_url" {
  description = "Base URL of Keycloak, e.g. http://127.0.0.1:8380 (scripts/keycloak.sh) or http://localhost:8080 (docker compose)."
  type        = string
  default     = "http://localhost:8080"
}

variable "admin_username" {
  description = "Master-realm admin (the demo's bootstrap admin)."
  type        = string
  default     = "admin"
}

variable "admin_password" {
  description = "Password of admin_username. Pass it with TF_VAR_admin_password, not in a file."
  type        = string
  sensitive   = true
}

variable "realm" {
  description = "The realm that holds the API (examples/keycloak/realm-demo.json imports it)."
  type        = string
  default     = "demo"
}

variable "client_id" {
  description = "Client id of the new machine client."
  type        = string
  default     = "inventory-sync"
}
