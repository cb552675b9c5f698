#!/usr/bin/env bash
# System tools for the deployment tests: Debian's prometheus (2.42, with promtool). Idempotent and never
# fatal: without root or apt-get the Prometheus tests skip and say why.
set -u
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: prometheus/promtool missing and cannot apt-get install them (not root, or no apt):" \
       "the Prometheus tests in tests/test_deploy.py will be skipped" >&2
  exit 0
fi
# The package would start its own service on :9090; the tests run their own instance on a free port.
created=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created=1
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; then
  echo "system-deps: apt-get install prometheus failed: the Prometheus tests will be skipped" >&2
fi
if [ -n "$created" ]; then rm -f /usr/sbin/policy-rc.d; fi
exit 0
