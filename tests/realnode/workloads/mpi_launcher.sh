#!/bin/sh
# MPIJob launcher (kubeflow.org/v2beta1): mpirun over ssh to the workers the operator's hostfile names
# (/etc/mpi/hostfile, FQDNs `<pod>.<job>.<ns>.svc`), with the key pair of the Secret it mounted at
# /root/.ssh and the OMPI_MCA_* env it set (the default hostfile among them: no --host here).
# What an mpi-operator image does at build time is done here, so the training image stays generic:
# accept the workers' host keys (they are made per pod), as mpi-operator's base image configures ssh.
# Then wait until each worker's sshd takes the key, and run $1 ranks of the MPI all-reduce.
set -u
want="$1"
hostfile=/etc/mpi/hostfile
mkdir -p /etc/ssh/ssh_config.d
printf 'Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n' \
  >/etc/ssh/ssh_config.d/mpi-hosts.conf
t0=$(date +%s)
elapsed() { echo $(($(date +%s) - t0)); }
echo "ssh dir: $(stat -c "%a %U" /root/.ssh) (the Secret volume's root)"
echo "hostfile: $(tr '\n' ' ' <"$hostfile")"
for host in $(cut -d' ' -f1 "$hostfile"); do
  until ssh -o BatchMode=yes -o ConnectTimeout=3 "$host" true 2>/dev/null; do
    [ "$(elapsed)" -lt 170 ] || { echo "no ssh to $host"; ssh -v -o BatchMode=yes "$host" true; exit 1; }
    sleep 1
  done
  echo "ssh to $host: ok after $(elapsed) s"
done
exec mpirun --allow-run-as-root -np "$want" python3 /workload/mpi_allreduce.py
