// Reading a program's /metrics the way Prometheus would, for tests that count what happened.

/** The sum of every sample of `name` whose labels include `labels`. */
export async function metricSum(observabilityUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${observabilityUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = match[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => present.includes(`${k}="${v}"`))) sum += Number(match[3]);
  }
  return sum;
}
