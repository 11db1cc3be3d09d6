// One node's life: serving, then draining (SIGTERM) until it stops. Whoever needs to know reads
// this one object: readiness, the agent port (turns new replicas away), routing (ends streams
// cleanly), and the edges (count what is in flight).

export class NodeLifecycle {
  #drain = new AbortController();
  #inFlight = 0;

  /** Aborted when the node starts draining: streams (watches, follows) then end cleanly. */
  get drainSignal(): AbortSignal {
    return this.#drain.signal;
  }

  get draining(): boolean {
    return this.#drain.signal.aborted;
  }

  /** Requests being answered on this node's API and private ports. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Counts one request in flight; call the returned function once, when its answer is over. */
  begin(): () => void {
    this.#inFlight++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#inFlight--;
    };
  }

  startDraining(): void {
    this.#drain.abort(new Error('kas node is shutting down'));
  }
}
