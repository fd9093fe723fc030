#!/usr/bin/env bash
# Runs inside the machine Packer builds, as root: installs bridgehead with the shared
# appliance/install.sh (uploaded to /tmp/appliance, the binary to /tmp/bridgehead), makes sure
# cloud-init can read the instance's user data (packer/cloud-init/user-data.yaml drops the
# configuration into /etc/bridgehead), and cleans up.
#
# Environment: BRIDGEHEAD_CLOUD = aws | azure | gcp | qemu (which cloud-init datasource).
set -euo pipefail
cloud="${BRIDGEHEAD_CLOUD:?set BRIDGEHEAD_CLOUD to aws, azure, gcp or qemu}"
export DEBIAN_FRONTEND=noninteractive

case "$cloud" in
aws) datasources="Ec2, None" ;;
azure) datasources="Azure, None" ;;
gcp) datasources="GCE, None" ;;
qemu) datasources="NoCloud, None" ;;
*) echo "provision.sh: unknown BRIDGEHEAD_CLOUD $cloud" >&2; exit 1 ;;
esac

# Debian's AWS and Azure images ship cloud-init; its GCE images and a debootstrapped base do not.
if ! command -v cloud-init >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends cloud-init
fi
mkdir -p /etc/cloud/cloud.cfg.d
cat >/etc/cloud/cloud.cfg.d/90-bridgehead.cfg <<CFG
# Written by bridgehead's packer/scripts/provision.sh: where this image finds its user data.
datasource_list: [ $datasources ]
CFG
if [ "$cloud" = gcp ]; then
    # On Google Cloud the guest agent manages users and SSH keys; cloud-init only applies the
    # user data (the bridgehead configuration).
    cat >/etc/cloud/cloud.cfg.d/91-bridgehead-gce.cfg <<'CFG'
# Written by bridgehead's packer/scripts/provision.sh: leave accounts to the Google guest agent.
disable_root: false
ssh_deletekeys: false
ssh_genkeytypes: []
users: []
CFG
fi

bash /tmp/appliance/install.sh --binary /tmp/bridgehead
/usr/bin/bridgehead check -c /etc/bridgehead/bridgehead.toml

# Each instance runs cloud-init afresh and gets its own machine ID.
cloud-init clean --logs || true
rm -rf /tmp/appliance /tmp/bridgehead
truncate -s 0 /etc/machine-id
echo "provision.sh: bridgehead installed for $cloud"
