# wadm on Nomad: 3 equal replicas (no leader, no state on disk), talking to an existing NATS
# cluster with JetStream. See docs/deploy.md. Secrets come from Nomad Variables
# (`nomad var put nomad/jobs/wadm nats_password=…`).
job "wadm" {
  type = "service"

  group "wadm" {
    count = 3

    # Replicas are equal: one at a time keeps the API and every lattice served.
    update {
      max_parallel     = 1
      health_check     = "checks"
      min_healthy_time = "10s"
      healthy_deadline = "2m"
      auto_revert      = true
    }

    network {
      port "http" { to = 9090 }
    }

    service {
      name     = "wadm"
      port     = "http"
      provider = "nomad"
      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "wadm" {
      driver = "docker"
      # SIGTERM: wadm hands its lattices over and exits within ~1.5 s.
      kill_timeout = "10s"

      config {
        image = "registry.example.com/wadm:0.1.0" # built from the repository's Dockerfile
        args  = ["serve", "--http-addr", "0.0.0.0:9090"]
        ports = ["http"]
        readonly_rootfs = true
      }

      template {
        destination = "secrets/wadm.env"
        env         = true
        data        = <<-EOT
          WADM_NATS_URL=tls://nats-0.service.consul:4222,tls://nats-1.service.consul:4222,tls://nats-2.service.consul:4222
          WADM_NATS_USER=wadm
          {{ with nomadVar "nomad/jobs/wadm" }}WADM_NATS_PASSWORD={{ .nats_password }}{{ end }}
          WADM_NATS_TLS_CA=/secrets/ca.pem
          WADM_STREAM_REPLICAS=3
        EOT
      }

      template {
        destination = "secrets/ca.pem"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/wadm" }}{{ .nats_ca }}{{ end }}
        EOT
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
