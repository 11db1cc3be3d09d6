// CSS imports are the bundler's business.
declare module '*.css' {}

// protocol/messages.ts, which protocol/ui.ts's types reach, calls Node's Buffer in code the
// browser never runs; this is all of Buffer the type check needs to see there.
declare const Buffer: { allocUnsafe(size: number): Uint8Array };
