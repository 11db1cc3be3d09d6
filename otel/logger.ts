// JSON lines on stdout for both programs. Secrets never reach a log line: the serializers below
// drop credentials even if a caller passes a whole header object by mistake.
import { pino, type Logger } from 'pino';

export function createLogger(service: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: {
      paths: ['token', 'headers.authorization', 'headers.cookie', '*.token', 'auth.token'],
      censor: '[redacted]',
    },
  });
}
