// Every command in docs/*.md's command blocks, run as written on tiny data with tiny budgets, so the
// docs cannot rot. A command that cannot run here is listed in NOT_RUN with the reason; a new one
// that fits neither list fails this test until it runs or is listed.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const CLI = path.join(root, 'dist', 'src', 'cli', 'main.js');
const ENV = { ...process.env, AVAP_NUM_THREADS: '1', AVAP_CHECKPOINT_SECONDS: '0' };

/** Commands not run here, by how they start, with the reason. */
const NOT_RUN: { starts: string; why: string }[] = [
  { starts: 'npm test', why: 'the test suite itself' },
  { starts: 'npm run demo', why: 'trains for minutes; test/demo.test.ts runs the demo at a tiny size' },
  { starts: 'torchrun', why: 'several training processes under PyTorch\'s launcher; test/distributed.test.ts runs it at a tiny size where Debian\'s python3-torch is installed' },
  { starts: 'npm run bench:', why: 'benchmarks run for minutes on a quiet machine; their figures are in docs/benchmarks.md with the command and machine' },
  { starts: 'avap launch --nproc-per-node 2 --nnodes 2', why: 'needs two machines' },
  { starts: 'avap launch', why: 'several training processes; test/distributed.test.ts runs them at a tiny size' },
  { starts: 'avap experiment', why: 'trains every method at every budget; test/experiment*.test.ts run it at tiny sizes' },
  { starts: 'avap view', why: 'a server that runs until stopped; the README tour test starts it and fetches the page' },
  { starts: 'avap train --data data/riga --subset BinRushed,MESSIDOR', why: 'needs torchvision\'s ImageNet weights (nothing is downloaded) and RIGA\'s subsets' },
];

/** What the runs change so they take seconds: budgets and sizes. Later flags win. */
const TINY_TRAINING = ['--steps', '2', '--size', '32', '--encoder', 'resnet18', '--batch-size', '2'];
/** AVAP's too: step 2 once, without the preference gate's cross-fitting. */
const TINY_AVAP = ['--preference-steps', '1', '--preference-folds', '0'];
const TINY_SYNTH = ['--cases', '8', '--train', '4', '--size', '64'];
/** The synthetic QUBIQ set has no Testing split (it has no masks to make): Validation stands in. */
const SUBSTITUTED_SPLITS: Record<string, string> = { Testing: 'Validation' };

interface DocCommand { page: string; line: string; argv: string[] }

/** Command lines of a page's fenced blocks; in a block of `$ ` lines, only those (the rest is output). */
function docCommands(page: string): DocCommand[] {
  const text = fs.readFileSync(path.join(root, page), 'utf8');
  const commands: DocCommand[] = [];
  for (const [, lang, body] of text.matchAll(/```(\w*)\n([\s\S]*?)```/g)) {
    if (!['', 'sh', 'bash'].includes(lang)) continue;
    const lines = body.split('\n');
    const prompted = lines.some((l) => l.startsWith('$ '));
    for (const raw of lines) {
      if (prompted && !raw.startsWith('$ ')) continue;
      const line = raw.replace(/^\$ /, '').replace(/\s#.*$/, '').trim();
      if (!/^(avap|npm|torchrun) /.test(line)) continue;
      commands.push({ page, line, argv: line.split(/\s+/) });
    }
  }
  return commands;
}

/** A usage synopsis (`avap synth --out DIR [--cases 100]`), not a command to run. */
const isSynopsis = (line: string): boolean => /\s\[/.test(line);

function run(cwd: string, argv: string[]): void {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [CLI, ...argv], { cwd, env: ENV, encoding: 'utf8' });
  assert.equal(r.status, 0, `avap ${argv.join(' ')}\n${r.stderr}`);
  if (process.env.DOCS_TIMING) process.stderr.write(`${Date.now() - t0} ms  avap ${argv.join(' ')}\n`);
}

/** The value after `flag` in argv. */
const valueOf = (argv: string[], flag: string): string | undefined => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);

/** Tiny stand-ins, made once, for what the docs' commands read but do not make themselves. */
class Fixtures {
  constructor(private readonly dir: string) {}
  private made = new Map<string, string>();

  private make(kind: string, build: (out: string) => void): string {
    let p = this.made.get(kind);
    if (!p) {
      p = path.join(this.dir, kind);
      build(p);
      this.made.set(kind, p);
    }
    return p;
  }

  native(): string {
    return this.make('native', (out) => run(this.dir, ['synth', '--out', out, ...TINY_SYNTH]));
  }

  qubiq(): string {
    return this.make('qubiq', (out) => {
      run(this.dir, ['synth', '--layout', 'qubiq', '--out', out, '--cases', '6', '--size', '32']);
    });
  }

  run(): string {
    return this.make('run', (out) => run(this.dir, ['train', '--data', this.native(), '--out', out, ...TINY_TRAINING, ...TINY_AVAP]));
  }

  /** Copies what a command reads into `cwd` where it is missing. */
  provide(cwd: string, argv: string[]): void {
    const copy = (from: string, to: string) => { if (!fs.existsSync(path.join(cwd, to))) fs.cpSync(from, path.join(cwd, to), { recursive: true }); };
    const data = argv[1] === 'data' && argv[2] === 'check' ? argv[3] : valueOf(argv, '--data');
    if (data) {
      if (data.startsWith('qubiq/')) {
        const qubiq = this.qubiq();
        copy(path.join(qubiq, fs.readdirSync(qubiq)[0]), data);
      } else copy(this.native(), data);
    }
    const model = valueOf(argv, '--model');
    if (model && !model.endsWith('.onnx')) copy(this.run(), model);
    const input = valueOf(argv, '--input');
    if (input?.startsWith('qubiq/')) copy(path.join(this.qubiq(), fs.readdirSync(this.qubiq())[0]), input);
    else if (input && !fs.existsSync(path.join(cwd, input))) copy(path.join(this.native(), 'images'), input);
  }
}

/** The command as run: tiny budgets for train, a tiny dataset for synth, a split the fixture has. */
function tiny(argv: string[]): string[] {
  const args = argv.slice(1).map((a, i, all) => (all[i - 1] === '--split' ? SUBSTITUTED_SPLITS[a] ?? a : a));
  if (args[0] === 'synth') return [...args, ...TINY_SYNTH];
  if (args[0] !== 'train') return args;
  const method = valueOf(args, '--method') ?? 'avap';
  return [...args, ...TINY_TRAINING, ...(method === 'avap' ? TINY_AVAP : [])];
}

test('every command in docs/*.md runs as written (tiny data and budgets), or is listed as not run with the reason', () => {
  const pages = fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => path.join('docs', f));
  const commands = pages.flatMap(docCommands);
  assert.ok(commands.length >= 20, `found ${commands.length} commands`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-docs-'));
  const ran: string[] = [];
  const ranIn = new Map<string, string>();
  const skipped = new Set<string>();
  try {
    const fixtures = new Fixtures(dir);
    for (const page of pages) {
      // One folder per page: a page's commands build on each other, as a reader runs them.
      const cwd = path.join(dir, path.basename(page, '.md'));
      fs.mkdirSync(cwd);
      for (const c of commands.filter((x) => x.page === page)) {
        if (isSynopsis(c.line)) continue;
        // A block repeated on another page (how-to.md's deployment commands) runs once; its output
        // is copied, so the page's next commands find it as a reader running that page would.
        const earlier = ranIn.get(c.line);
        if (earlier !== undefined) {
          const out = valueOf(c.argv, '--out');
          if (out && fs.existsSync(path.join(earlier, out)) && !fs.existsSync(path.join(cwd, out))) fs.cpSync(path.join(earlier, out), path.join(cwd, out), { recursive: true });
          continue;
        }
        const listed = NOT_RUN.find((n) => c.line.startsWith(n.starts));
        if (listed) { skipped.add(listed.starts); continue; }
        assert.equal(c.argv[0], 'avap', `${page}: '${c.line}' is neither run here nor listed in NOT_RUN`);
        fixtures.provide(cwd, c.argv);
        run(cwd, tiny(c.argv));
        ran.push(`${page}: ${c.line}`);
        ranIn.set(c.line, cwd);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(ran.length >= 15, `ran ${ran.length} commands`);
  assert.deepEqual(NOT_RUN.filter((n) => !skipped.has(n.starts)).map((n) => n.starts), [], 'every NOT_RUN entry still names a command in the docs');
});
