// CSS imports are the bundler's business.
declare module '*.css' {}

// protocol/messages.ts and messageSchemas.ts, which protocol/ui.ts's types reach, call Node's
// Buffer in code the browser never runs; this is all of Buffer the type check needs to see there.
interface NodeBufferLike extends Uint8Array {
  toString(encoding?: 'base64'): string;
}
declare const Buffer: { allocUnsafe(size: number): NodeBufferLike; from(text: string, encoding: 'base64'): NodeBufferLike };
