"""Processes by state and by user, counted from /proc, in Influx line protocol, once per request."""
import os
import pwd
import sys
from collections import Counter

STATES = {"R": "running", "S": "sleeping", "D": "disk_sleep", "Z": "zombie", "T": "stopped", "I": "idle"}


def user(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def sample():
    states, users = Counter(), Counter()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
            owner = os.stat(f"/proc/{entry}").st_uid
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue  # gone meanwhile
        states[STATES.get(state, "other")] += 1
        users[user(owner)] += 1
    for state, count in sorted(states.items()):
        print(f"processes,state={state} count={count}i")
    for name, count in sorted(users.items()):
        print(f"processes_by_user,user={name.replace(' ', '_')} count={count}i")
    print()


print("I! processes plugin started", file=sys.stderr)
for _ in sys.stdin:
    sample()
    sys.stdout.flush()
