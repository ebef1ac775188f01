# A client's plugin "istio-sidecar" { config { ... } } body: two more IDs treated as the proxy's, and a
# fleet-wide owner-group exclusion.
extra_proxy_uids = [2000]
extra_proxy_gids = [3000]

interception {
  exclude_outbound_owner_groups = ["202"]
}
