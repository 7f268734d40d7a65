#!/bin/sh
# Login sessions per user and the host's uptime, in Prometheus text format.
set -eu
echo '# HELP host_login_sessions Login sessions (who) by user.'
echo '# TYPE host_login_sessions gauge'
who 2>/dev/null | awk '{ n[$1]++ } END { for (u in n) printf "host_login_sessions{user=\"%s\"} %d\n", u, n[u] }'
echo '# HELP host_uptime_seconds Seconds since boot.'
echo '# TYPE host_uptime_seconds gauge'
awk '{ print "host_uptime_seconds " $1 }' /proc/uptime
