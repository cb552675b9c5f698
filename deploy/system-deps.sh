#!/usr/bin/env bash
# System tools for tests/test_deploy.py, from Debian: prometheus 2.42 (with promtool) and docker-compose 1.29
# (only to validate docker-compose.yml; there is no Docker engine); for tests/test_k8s.py, kubectl (its built-in
# kustomize renders deploy/k8s without a cluster and must be kustomize 5: the project's machines come with the
# package `kubectl` of the Google Cloud CLI's apt source; Debian's own archive has no `kubectl`, and its
# `kubernetes-client` is kubectl 1.20, too old to render deploy/k8s). Idempotent and never fatal: without root
# or apt-get, or when a package cannot be found, the tests that need a missing tool are skipped and say why.
set -u
missing=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${missing[*]} and cannot apt-get install (not root, or no apt):" \
       "the tests in tests/test_deploy.py and tests/test_k8s.py that need them will be skipped" >&2
  exit 0
fi
# The prometheus package would start its own service on :9090; the tests run their own on a free port.
created=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created=1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || echo "system-deps: apt-get update failed" >&2
for pkg in "${missing[@]}"; do  # one at a time: an optional one failing must not block the other
  apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null \
    || echo "system-deps: apt-get install $pkg failed: the tests that need it will be skipped" >&2
done
if [ -n "$created" ]; then rm -f /usr/sbin/policy-rc.d; fi
exit 0
