#!/usr/bin/env python3
"""Summarise a `spike.sh bwe` log: str0m's estimate and Chromium's received bitrate per 5 s.
   python3 bwe_table.py < spike-bwe.out"""
import json, re, sys

est, samples = [], []
for line in sys.stdin:
    m = re.match(r"bwe estimate t=(\d+) ms ([\d.]+) Mbit/s", line)
    if m:
        est.append((int(m[1]) / 1000, float(m[2])))
    elif line.startswith('{"offerToFirstFrameMs"'):
        samples = json.loads(line)["samples"]

def estimate_at(t):
    prior = [e for s, e in est if s <= t]
    return prior[-1] if prior else float("nan")

# Chromium samples once a second from its own start (≈ connect + 1 s); bytes/s -> Mbit/s.
rx = {}
for a, b in zip(samples, samples[1:]):
    rx[b["t"]] = (b["bytesReceived"] - a["bytesReceived"]) * 8 / 1e6
caps = [(0, "none"), (15, "2mbit"), (45, "5mbit"), (75, "20mbit")]
print(" t(s)  cap     str0m estimate  Chromium rx (Mbit/s, 5 s mean)")
for t in range(5, 110, 5):
    cap = [c for s, c in caps if s < t][-1] if t > 0 else "none"
    window = [rx[s] for s in range(t - 4, t + 1) if s in rx]
    mean = sum(window) / len(window) if window else float("nan")
    print(f"{t:5d}  {cap:7s} {estimate_at(t):10.2f}       {mean:8.2f}")
