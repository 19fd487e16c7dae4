# tinqs-ci runner AMI: Ubuntu 24.04 LTS (x86_64) with one runner binary (act_runner or
# gitea-runner), git, Go, Node.js with pnpm, Docker and AWS CLI v2 baked in, IMDSv2 required,
# and no SSH access. Build with `make -C ami build REGION=…` (see ami/Makefile); point pools at
# the AMI id it prints.

packer {
  required_version = ">= 1.9.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0"
    }
  }
}

variable "region" {
  type        = string
  description = "AWS region to build in; the AMI is created there."
}

variable "instance_type" {
  type    = string
  default = "c7a.large"
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance (needs outbound internet); empty: the default VPC."
}

variable "ami_name_prefix" {
  type    = string
  default = "tinqs-ci-runner"
}

variable "root_volume_gb" {
  type        = number
  default     = 16
  description = "Root volume of the image; a pool's volume_size_gb must be at least this."
}

# The runner binary the image carries, exactly one: `act_runner-<version>` (0.2.12 or later:
# the boot script needs `daemon --once` and `register --ephemeral`) or
# `gitea-runner-<version>` (1.0.0 or later; act_runner's name from its v1.0.0). The boot script
# runs whichever it finds.
variable "runner" {
  type        = string
  default     = "act_runner-0.2.13"
  description = "Runner binary and version: act_runner-0.2.N (N >= 12), act_runner-0.N.M (N >= 3) or gitea-runner-X.Y.Z (X >= 1)."
  validation {
    condition     = can(regex("^(act_runner-0[.](2[.](1[2-9]|[2-9][0-9]+)|([3-9]|[1-9][0-9]+)[.](0|[1-9][0-9]*))|gitea-runner-[1-9][0-9]*[.](0|[1-9][0-9]*)[.](0|[1-9][0-9]*))$", var.runner))
    error_message = "The runner must be act_runner-0.2.N (N >= 12), act_runner-0.N.M (N >= 3) or gitea-runner-X.Y.Z (X >= 1), e.g. act_runner-0.2.13."
  }
}
variable "runner_sha256" {
  type        = string
  default     = ""
  description = "sha256 of the runner's linux-amd64 binary, for a runner not in local.runner_sha256_pins (a pinned one always uses its pin). Empty for an unpinned runner fails the build."
  validation {
    condition     = var.runner_sha256 == "" || can(regex("^[0-9a-f]{64}$", var.runner_sha256))
    error_message = "The runner_sha256 must be 64 lowercase hex digits."
  }
}
variable "runner_base_url" {
  type        = string
  default     = "https://dl.gitea.com"
  description = "Where the runner binaries are published: <base>/<name>/<version>/<name>-<version>-linux-amd64."
}

# Pinned tool versions and the sha256 of each download (published with each release).
variable "go_version" {
  type    = string
  default = "1.26.4"
}
variable "go_sha256" {
  type    = string
  default = "1153d3d50e0ac764b447adfe05c2bcf08e889d42a02e0fe0259bd47f6733ad7f"
}
variable "node_version" {
  type    = string
  default = "22.23.1"
}
variable "node_sha256" {
  type    = string
  default = "9749e988f437343b7fa832c69ded82a312e41a03116d766797ac14f6f9eee578"
}
variable "pnpm_version" {
  type    = string
  default = "10.12.4"
}
variable "pnpm_sha512" {
  type    = string
  default = "5ea8b0deed94ed68691c9bad4c955492705c5eeb8a87ef86bc62c74a26b037b08ff9570f108b2e4dbd1dd1a9186fea925e527f141c648e85af45631074680184"
}
variable "awscli_version" {
  type    = string
  default = "2.27.49"
}
variable "awscli_sha256" {
  type    = string
  default = "93842f724f8b76fbee05ac6a403dad603043b04eecfe3526f2035494718eb87b"
}

locals {
  stamp = formatdate("YYYYMMDD-hhmmss", timestamp())

  # The one place runner checksums are pinned: the sha256 of each known runner's linux-amd64
  # binary, from the `.sha256` file published beside it. Only runners whose checksum was
  # checked are listed; any other needs -var runner_sha256=… (RUNNER_SHA256=… for make).
  runner_sha256_pins = {
    "act_runner-0.2.13" = "3acac8b506ac8cadc88a55155b5d6378f0fab0b8f62d1e0c0450f4ccd69733e2"
  }
  runner_name    = regex("^(act_runner|gitea-runner)-", var.runner)[0]
  runner_version = trimprefix(var.runner, "${local.runner_name}-")
  runner_sha256  = lookup(local.runner_sha256_pins, var.runner, var.runner_sha256)
}

source "amazon-ebs" "runner" {
  region          = var.region
  instance_type   = var.instance_type
  subnet_id       = var.subnet_id == "" ? null : var.subnet_id
  ami_name        = "${var.ami_name_prefix}-${local.stamp}"
  ami_description = "tinqs-ci runner: ${local.runner_name} ${local.runner_version}, Go ${var.go_version}, Node.js ${var.node_version}, AWS CLI ${var.awscli_version}"

  source_ami_filter {
    filters = {
      name                = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["099720109477"] # Canonical
    most_recent = true
  }

  # Instances launched from the AMI require IMDSv2 (session tokens); so does the build instance.
  imds_support = "v2.0"
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  # Packer's own temporary key; provision.sh removes it and disables sshd before the snapshot.
  ssh_username            = "ubuntu"
  temporary_key_pair_type = "ed25519"

  launch_block_device_mappings {
    device_name           = "/dev/sda1"
    volume_size           = var.root_volume_gb
    volume_type           = "gp3"
    delete_on_termination = true
  }

  run_tags = {
    Name = "tinqs-ci-runner-ami-build"
  }
  tags = {
    Name                   = "${var.ami_name_prefix}-${local.stamp}"
    "tinqs-ci:component"   = "runner-ami"
    "tinqs-ci:runner"      = var.runner
    "tinqs-ci:source-ami"  = "{{ .SourceAMI }}"
    "tinqs-ci:source-name" = "{{ .SourceAMIName }}"
  }
}

build {
  sources = ["source.amazon-ebs.runner"]

  provisioner "shell" {
    script          = "${path.root}/provision.sh"
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
    environment_vars = [
      "RUNNER_NAME=${local.runner_name}",
      "RUNNER_VERSION=${local.runner_version}",
      "RUNNER_SHA256=${local.runner_sha256}",
      "RUNNER_BASE_URL=${var.runner_base_url}",
      "GO_VERSION=${var.go_version}",
      "GO_SHA256=${var.go_sha256}",
      "NODE_VERSION=${var.node_version}",
      "NODE_SHA256=${var.node_sha256}",
      "PNPM_VERSION=${var.pnpm_version}",
      "PNPM_SHA512=${var.pnpm_sha512}",
      "AWSCLI_VERSION=${var.awscli_version}",
      "AWSCLI_SHA256=${var.awscli_sha256}",
    ]
  }

  post-processor "manifest" {
    output     = "${path.root}/manifest.json"
    strip_path = true
  }
}
