import type { Upstream } from '../../protocol/messages.ts';

/** What a capability module is asked to check: the caller's request below the upstream's base. */
export interface CapabilityRequest {
  method: string;
  /** Raw (still percent-encoded) path below the upstream's base URL. */
  rawPath: string;
  query: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A request the module allows, normalised: only this is sent to the agent. */
export interface CheckedRequest {
  method: 'GET' | 'HEAD' | 'POST';
  path: string;
  headers: Record<string, string>;
  streaming: boolean;
}

/** Throws a KasError (403 and friends) for anything the capability does not allow. */
export type CheckRequest = (request: CapabilityRequest) => CheckedRequest;

export type CapabilityChecks = Partial<Record<Upstream, CheckRequest>>;
