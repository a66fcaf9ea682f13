import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { expect } from 'chai';
import { GroupCoordinator, readGroup, type GroupState } from '../../../adapters/eventlog/group.js';
import { tempDir } from '../../helpers.js';

describe('eventlog: committed offsets of a group', function () {
  let tmp: ReturnType<typeof tempDir>;
  let topicDir: string;
  let groupFile: string;
  beforeEach(() => {
    tmp = tempDir('busbar-evo-');
    topicDir = join(tmp.path, 't');
    groupFile = join(topicDir, 'groups', 'g.json');
  });
  afterEach(() => tmp.cleanup());

  const named = (): string => join(topicDir, 'groups', `g.${(JSON.parse(readFileSync(groupFile, 'utf8')) as GroupState).offsetsFile}.offsets`);
  const offsetsFiles = (): string[] => readdirSync(join(topicDir, 'groups')).filter((f) => f.endsWith('.offsets'));
  const damage = (path: string, at: number): void => {
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from([0xa5]), 0, 1, at);
    closeSync(fd);
  };

  it('a torn or corrupted last commit of a partition leaves the one before it, and the next commit goes on from there', () => {
    const g = new GroupCoordinator(topicDir, 'g', 2, { sessionTimeoutMs: 60_000, memberId: 'a' });
    const epoch = g.heartbeat().owned.get(0)!;
    for (let i = 1; i <= 5; i++) expect(g.commit([[0, epoch, i * 10], [1, epoch, i]])).to.deep.equal([]);
    expect(readGroup(groupFile)!.offsets).to.deep.equal({ 0: 50, 1: 5 });
    // the file the first commit made: header 64 bytes, then 64 per partition, two slots of 32 each.
    // Partition 0's commit 5 is in its slot 1 (odd), commit 4 in slot 0: spoil slot 1's sequence number, offset or CRC
    const file = named();
    for (const at of [64 + 32 + 3, 64 + 32 + 12, 64 + 32 + 17]) {
      damage(file, at);
      expect(readGroup(groupFile)!.offsets, `damage at ${at}`).to.deep.equal({ 0: 40, 1: 5 });
      // as after a restart: a commit of one partition goes into the slot not holding its newest whole commit, and touches no other
      g.close();
      expect(g.commit([[0, epoch, 41]])).to.deep.equal([]);
      expect(readGroup(groupFile)!.offsets).to.deep.equal({ 0: 41, 1: 5 });
      g.close();
      g.commit([[0, epoch, 40]]);
      g.commit([[0, epoch, 50]]);
      expect(readGroup(groupFile)!.offsets).to.deep.equal({ 0: 50, 1: 5 });
    }
    // partition 1's commit 5 torn off: the last 32 bytes hold its slot 1
    truncateSync(file, statSync(file).size - 20);
    expect(readGroup(groupFile)!.offsets, 'torn').to.deep.equal({ 0: 50, 1: 4 });
    g.leave();
  });

  it('a commit of what a member owns takes no lock: it goes through while another process holds the group lock', () => {
    const g = new GroupCoordinator(topicDir, 'g', 1, { sessionTimeoutMs: 60_000, memberId: 'a' });
    const epoch = g.heartbeat().owned.get(0)!;
    expect(g.commit([[0, epoch, 1]])).to.deep.equal([]);
    // a lock held by a live process on this host (our parent) would be waited for, 1 s, then fail
    writeFileSync(join(topicDir, 'groups', 'g.lock'), `${hostname()} ${process.ppid}`);
    const t0 = Date.now();
    for (let i = 2; i <= 20; i++) expect(g.commit([[0, epoch, i]])).to.deep.equal([]);
    expect(Date.now() - t0, '19 commits with the lock held elsewhere').to.be.below(900);
    expect(readGroup(groupFile)!.offsets[0]).to.equal(20);
  });

  it('a change of ownership seals the file: a zombie\'s commit into it is refused and counts nowhere; a live owner\'s is done again in the new file', () => {
    const a = new GroupCoordinator(topicDir, 'g', 2, { sessionTimeoutMs: 1000, memberId: 'a' });
    const t0 = Date.now();
    const owned = a.heartbeat(t0).owned;
    expect(a.commit([[0, owned.get(0)!, 10], [1, owned.get(1)!, 20]])).to.deep.equal([]);
    const before = named();
    // b joins: partition 1 (say) is marked to go to b, a still owns both in their epochs
    const b = new GroupCoordinator(topicDir, 'g', 2, { sessionTimeoutMs: 1000, memberId: 'b' });
    b.heartbeat(t0 + 10);
    expect(named(), 'a new file').to.not.equal(before);
    expect(existsSync(before), 'the old file is removed').to.equal(false);
    expect(offsetsFiles()).to.have.length(1);
    // a's open file is the sealed old one: its commit is done again under the lock, into the new file
    expect(a.commit([[0, owned.get(0)!, 11], [1, owned.get(1)!, 21]])).to.deep.equal([]);
    expect(readGroup(groupFile)!.offsets).to.deep.equal({ 0: 11, 1: 21 });
    // a falls silent; b's heartbeat expels it and takes both partitions in new epochs
    const mine = b.heartbeat(t0 + 5000).owned;
    expect([...mine.keys()].sort()).to.deep.equal([0, 1]);
    expect(b.commit([[0, mine.get(0)!, 12]])).to.deep.equal([]);
    // the zombie's commit (its old epochs) lands in its sealed file, is refused, and moves nothing
    expect(a.commit([[0, owned.get(0)!, 999], [1, owned.get(1)!, 999]])).to.deep.equal([0, 1]);
    expect(readGroup(groupFile)!.offsets).to.deep.equal({ 0: 12, 1: 21 });
    a.close();
    b.leave();
  });

  it('a replacement cut off after the seal (a crash) is finished by the next commit; nothing committed before is lost', () => {
    const g = new GroupCoordinator(topicDir, 'g', 2, { sessionTimeoutMs: 60_000, memberId: 'a' });
    const owned = g.heartbeat().owned;
    expect(g.commit([[0, owned.get(0)!, 7], [1, owned.get(1)!, 8]])).to.deep.equal([]);
    const file = named();
    // what a replacement does first: set the sealed flag (bytes 4..7 of the header)
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.from([0, 0, 0, 1]), 0, 4, 4);
    closeSync(fd);
    expect(readGroup(groupFile)!.offsets, 'a sealed file is still read').to.deep.equal({ 0: 7, 1: 8 });
    expect(g.commit([[0, owned.get(0)!, 9]])).to.deep.equal([]);
    expect(named(), 'replaced').to.not.equal(file);
    expect(offsetsFiles()).to.have.length(1);
    expect(readGroup(groupFile)!.offsets).to.deep.equal({ 0: 9, 1: 8 });
    g.leave();
  });

  it('the offsets file of earlier versions (two JSON slots in <group>.offsets) is read, and replaced at the first commit', () => {
    const g = new GroupCoordinator(topicDir, 'g', 2, { sessionTimeoutMs: 60_000, memberId: 'a' });
    const owned = g.heartbeat().owned;
    // an earlier version's group: no offsetsFile in the group file, its commits in g.offsets
    const state = JSON.parse(readFileSync(groupFile, 'utf8')) as GroupState;
    for (const f of offsetsFiles()) unlinkSync(join(topicDir, 'groups', f));
    delete state.offsetsFile;
    writeFileSync(groupFile, JSON.stringify(state));
    const legacy = Buffer.alloc(2 * 64 * 1024);
    const slot = (at: number, seq: number, offsets: Record<string, number>): void => {
      const body = Buffer.from(JSON.stringify(offsets));
      legacy.writeUInt32BE(0x45564f31, at);
      legacy.writeUInt32BE(0, at + 4);
      legacy.writeUInt32BE(seq, at + 8);
      legacy.writeUInt32BE(body.length, at + 12);
      legacy.writeUInt32BE(crc32(body, crc32(legacy.subarray(at + 4, at + 16))), at + 16);
      body.copy(legacy, at + 20);
    };
    slot(0, 4, { 0: 40, 1: 4 });
    slot(64 * 1024, 5, { 0: 50, 1: 5 });
    writeFileSync(join(topicDir, 'groups', 'g.offsets'), legacy);
    expect(readGroup(groupFile)!.offsets).to.deep.equal({ 0: 50, 1: 5 });
    g.close();
    expect(g.commit([[1, owned.get(1)!, 6]])).to.deep.equal([]);
    expect(readGroup(groupFile)!.offsets).to.deep.equal({ 0: 50, 1: 6 });
    expect(existsSync(join(topicDir, 'groups', 'g.offsets')), 'the old file is gone').to.equal(false);
    g.leave();
  });
});
