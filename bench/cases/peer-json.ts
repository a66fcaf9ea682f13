import type { BenchCase } from '../harness.js';
import { runPeer } from '../peer.js';

const bench: BenchCase = {
  name: 'peer-json',
  description: 'JSON order string -> JSON.parse -> ajv -> enrich -> route 3 ways -> JSON out, counted: busbar as a user writes it vs a hand-written loop vs an rxjs pipeline, in the same run',
  run: ({ quick }) => runPeer('json', quick),
};

export default bench;
