#!/bin/sh
# Volcano mpimaster of the seed 003 shape: start sshd (as the seed does), wait until the hostfile the
# svc plugin mounts names the $1 workers the job was scaled to (the PUT raises mpiworker 1 -> 2 while
# this pod runs: the mounted file follows the ConfigMap) and each accepts ssh with the job's key,
# then mpiexec over ssh on those hosts, one rank each, as the seed's command.
set -u
want="$1"
hostfile=/etc/volcano/mpiworker.host
mkdir -p /var/run/sshd
/usr/sbin/sshd
t0=$(date +%s)
elapsed() { echo $(($(date +%s) - t0)); }
until [ "$(grep -c . "$hostfile")" -ge "$want" ]; do
  [ "$(elapsed)" -lt 170 ] || { echo "hostfile still names $(grep -c . "$hostfile") of $want workers"; exit 1; }
  sleep 1
done
echo "hostfile names $want workers after $(elapsed) s: $(tr '\n' ' ' <"$hostfile")"
for host in $(cat "$hostfile"); do
  until ssh -o BatchMode=yes -o ConnectTimeout=3 "$host" true 2>/dev/null; do
    [ "$(elapsed)" -lt 170 ] || { echo "no ssh to $host"; ssh -v -o BatchMode=yes "$host" true; exit 1; }
    sleep 1
  done
  echo "ssh to $host: ok after $(elapsed) s"
done
MPI_HOST=$(tr '\n' ',' <"$hostfile")
# orte_keep_fqdn_hostnames: Open MPI would cut `<pod>.<job>` to `<pod>` and ssh there, which only the
# ssh plugin's config resolves (a `Host <pod>` entry per replica, written at job creation and never
# rewritten, as upstream): the worker added by the scale has none, and its short name is not in DNS.
# Kept whole, the names resolve through the cluster DNS (the pods' search list), for every replica.
exec mpiexec --allow-run-as-root --mca orte_keep_fqdn_hostnames 1 --host "${MPI_HOST%,}" -np "$want" \
  python3 /workload/mpi_allreduce.py
