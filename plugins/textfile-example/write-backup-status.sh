#!/bin/sh
# What a backup job would run when it finishes: it records its outcome for Vigil, atomically.
# Usage: write-backup-status.sh OK|FAILED [BYTES]
set -eu
dir=$(dirname "$0")/textfiles
status=${1:-OK}
bytes=${2:-0}
tmp=$(mktemp "$dir/.backup.prom.XXXXXX")
{
  echo '# HELP backup_last_run_timestamp_seconds When the backup last finished.'
  echo '# TYPE backup_last_run_timestamp_seconds gauge'
  echo "backup_last_run_timestamp_seconds $(date +%s)"
  echo '# HELP backup_last_run_success 1 if the last backup succeeded.'
  echo '# TYPE backup_last_run_success gauge'
  echo "backup_last_run_success $([ "$status" = OK ] && echo 1 || echo 0)"
  echo '# HELP backup_last_run_bytes Bytes the last backup wrote.'
  echo '# TYPE backup_last_run_bytes gauge'
  echo "backup_last_run_bytes $bytes"
} >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$dir/backup.prom"
