outbound_ipv4_loopback_cidr = "127.0.0.0/8"
dns_capture                 = true
capture_all_dns             = true
