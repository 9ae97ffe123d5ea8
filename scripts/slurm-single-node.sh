#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine (for the Slurm end-to-end test in CI,
# or to try `degrade slurm` locally): munge, slurmctld and slurmd, the node in partition
# `debug`. Needs root and Debian's slurm-wlm and munge packages (installed if missing).
# Without systemd: the daemons are started directly and daemonise. Idempotent.
set -euo pipefail

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
# slurmctld and slurmd find each other by the short host name.
getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >> /etc/hosts

# munge: a key and its daemon.
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

mkdir -p /var/spool/slurmctld /var/log/slurm /var/spool/slurmd /etc/slurm
chown slurm:slurm /var/spool/slurmctld /var/log/slurm
# A bit under what the node reports, so slurmd registers.
mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
mem=$(( mem * 9 / 10 ))
cpus=$(nproc)
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=degrade-ci
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MailProg=/bin/true
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 100); do
  state=$(sinfo -h -o %t 2>/dev/null || true)
  case "$state" in
    idle*|mix*|alloc*) echo "slurm: node $host is $state"; exit 0 ;;
  esac
  sleep 0.2
done
echo "slurm did not come up; see /var/log/slurm/" >&2
exit 1
