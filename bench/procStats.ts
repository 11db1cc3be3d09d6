// What a benchmark reads of a process from /proc (Linux): its CPU time and its resident memory.
import { readFileSync } from 'node:fs';

/** User + system CPU seconds these processes have used so far; NaN once one of them is gone. */
export function cpuSeconds(pids: (number | undefined)[]): number {
  let ticks = 0;
  for (const pid of pids) {
    if (pid === undefined) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {
      return NaN;
    }
  }
  return ticks / 100; // USER_HZ
}

/** Resident memory of a process, bytes. */
export function rssBytes(pid: number | undefined): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}
