# syntax=docker/dockerfile:1.7
#
# Images of keycloak-jwt:
#   docker build -t keycloak-jwt-kong .                       # Kong 3.9 + the Go plugin (default target)
#   docker build -t keycloak-jwt-sidecar --target sidecar .   # the standalone sidecar
#
# The lint CLI ships in the Kong image:
#   docker run --rm -v "$PWD/examples/kong:/cfg:ro" keycloak-jwt-kong keycloak-jwt-lint -ignore-missing-keys /cfg/kong.yml

# ---------------------------------------------------------------- build
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Static binaries (no cgo): they run on Kong's Ubuntu base and on scratch.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/ \
      ./cmd/keycloak-jwt \
      ./cmd/keycloak-jwt-sidecar \
      ./cmd/keycloak-jwt-lint

# ---------------------------------------------------------------- sidecar
# Nothing but the binary, the CA bundle (for https JWKS fetches) and a
# non-root user id.
FROM scratch AS sidecar
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/keycloak-jwt-sidecar /keycloak-jwt-sidecar
USER 65532:65532
ENTRYPOINT ["/keycloak-jwt-sidecar"]

# ---------------------------------------------------------------- kong
# Kong runs the plugin as an embedded go-pdk plugin server: it asks the binary
# for its schema with QUERY_CMD (-dump), starts it with START_CMD, and talks to
# it over SOCKET. go-pdk listens on <kong-prefix>/<binary name>.socket, so the
# prefix given to the binary and the socket given to Kong must agree. The
# binary's file name is the plugin name: keep it "keycloak-jwt".
FROM kong:3.9.1 AS kong
COPY --from=build /out/keycloak-jwt /out/keycloak-jwt-lint /usr/local/bin/
ENV KONG_PLUGINS=bundled,keycloak-jwt \
    KONG_PLUGINSERVER_NAMES=keycloak-jwt \
    KONG_PLUGINSERVER_KEYCLOAK_JWT_SOCKET=/usr/local/kong/keycloak-jwt.socket \
    KONG_PLUGINSERVER_KEYCLOAK_JWT_START_CMD="/usr/local/bin/keycloak-jwt -kong-prefix /usr/local/kong" \
    KONG_PLUGINSERVER_KEYCLOAK_JWT_QUERY_CMD="/usr/local/bin/keycloak-jwt -dump"
USER kong
