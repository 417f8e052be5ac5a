{{- define "kj.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kj.labels" -}}
app.kubernetes.io/name: keycloak-jwt-sidecar
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kj.selector" -}}
app.kubernetes.io/name: keycloak-jwt-sidecar
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kj.keySecret" -}}
{{- .Values.upstreamJWT.existingSecret | default (printf "%s-upstream-jwt" (include "kj.name" .)) -}}
{{- end -}}

{{/* The sidecar's configuration: values.config with the listeners and the key file the pod needs. */}}
{{- define "kj.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $_ := set $cfg "listen" ":8080" -}}
{{- $_ := set $cfg "admin_listen" ":8081" -}}
{{- if .Values.grpc.enabled -}}
{{- $grpc := get $cfg "grpc" | default dict -}}
{{- $_ := set $grpc "listen" ":9001" -}}
{{- $_ := set $cfg "grpc" $grpc -}}
{{- end -}}
{{- if .Values.upstreamJWT.enabled -}}
{{- $jwt := get $cfg "upstream_jwt" | default dict -}}
{{- $_ := set $jwt "enabled" true -}}
{{- $_ := set $jwt "issuer" .Values.upstreamJWT.issuer -}}
{{- $_ := set $jwt "audience" .Values.upstreamJWT.audience -}}
{{- $_ := set $jwt "algorithm" .Values.upstreamJWT.algorithm -}}
{{- $_ := set $jwt "private_key_file" "/etc/keycloak-jwt/upstream-jwt/private.pem" -}}
{{- $_ := set $cfg "upstream_jwt" $jwt -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
