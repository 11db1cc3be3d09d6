// Preloaded (`node --import`) into the kas and agentk processes that `npm start` runs. They sit in
// their own process group, so a Ctrl-C reaches only the start script, which stops them in order.
// If the start script dies without doing so (SIGKILL, a crash), the pipe on their stdin closes:
// they then stop themselves instead of living on as orphans that hold the ports.
process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM'));
process.stdin.on('error', () => process.kill(process.pid, 'SIGTERM'));
process.stdin.resume();
