/**
 * The configuration a process runs with right now. Services read `current` when they
 * start a unit of work (a session, a message) and keep that snapshot for its lifetime, so
 * a change never applies halfway through a session; the next unit sees the new one.
 */
import type { OrganizationConfig } from './schema.ts';

export type ConfigSnapshot = { config: OrganizationConfig; revision: number };

export class LiveConfig {
  #current: ConfigSnapshot;
  readonly #listeners = new Set<(snapshot: ConfigSnapshot) => void>();

  constructor(initial: ConfigSnapshot) {
    this.#current = initial;
  }

  get current(): ConfigSnapshot {
    return this.#current;
  }

  /** Applies a newer revision; older or equal ones (a replayed watch) are ignored. */
  update(snapshot: ConfigSnapshot): boolean {
    if (snapshot.revision <= this.#current.revision) return false;
    this.#current = snapshot;
    for (const listener of this.#listeners) listener(snapshot);
    return true;
  }

  onChange(listener: (snapshot: ConfigSnapshot) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
