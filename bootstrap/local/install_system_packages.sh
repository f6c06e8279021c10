#!/usr/bin/env bash
# Install the Debian packages the local stack needs, only those that are missing.
#   usage: install_system_packages.sh [java] [nginx] [mariadb] [chromium] [wrk] [node] [systemd] [rehearsal]
# With no argument it checks all of them. Runs apt-get update once, and only if needed.
set -euo pipefail

wanted=("$@")
if [ ${#wanted[@]} -eq 0 ]; then
  wanted=(java nginx mariadb chromium wrk node systemd rehearsal)
fi

missing=()
for item in "${wanted[@]}"; do
  case "$item" in
    java)     java -version 2>&1 | grep -q 'version "17' || missing+=(openjdk-17-jre-headless) ;;
    nginx)    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light) ;;
    mariadb)  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server) ;;
    chromium) command -v chromium >/dev/null 2>&1 || missing+=(chromium) ;;
    wrk)      command -v wrk >/dev/null 2>&1 || missing+=(wrk) ;;
    node)     command -v npm >/dev/null 2>&1 || missing+=(nodejs npm) ;;
    systemd)  command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd) ;;  # verifies bootstrap/systemd
    # the deploy rehearsal's sandboxes: namespaces and veths, and what the Airflow host's dnf would install
    rehearsal)
      command -v ip >/dev/null 2>&1 || missing+=(iproute2)
      command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
      command -v curl >/dev/null 2>&1 || missing+=(curl)
      command -v iptables >/dev/null 2>&1 || missing+=(iptables)  # the LAN's NAT, as a VPC's NAT gateway
      ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
      ;;
    *) echo "unknown package group: $item" >&2; exit 2 ;;
  esac
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
else
  sudo_cmd=()
fi
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
# Debian's nginx and mariadb packages try to start their services on install; the local
# stack runs its own instances on its own ports, so keep the packaged services from starting.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo_cmd[@]}" chmod +x /usr/sbin/policy-rc.d
  trap '"${sudo_cmd[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
