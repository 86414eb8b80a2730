// The README's five-minute tour, run as written with fewer steps, so the front door cannot rot.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const CLI = path.join(root, 'dist', 'src', 'cli', 'main.js');
const ENV = { ...process.env, AVAP_NUM_THREADS: '1', AVAP_CHECKPOINT_SECONDS: '0' };

/** The ```sh block under the README's tour heading, one command per line, comments removed. */
function tourCommands(): string[][] {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('A five-minute tour'));
  assert.ok(section, 'README.md has a "## A five-minute tour" section');
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'the tour has a ```sh block');
  return block.split('\n').map((l) => l.replace(/#.*$/, '').trim()).filter((l) => l).map((l) => l.split(/\s+/));
}

/** The tour's budgets cut to what shows the commands work, not what trains a model. */
function shortened(argv: string[]): string[] {
  return argv.map((a, i) => (['--steps', '--preference-steps'].includes(argv[i - 1]) ? '2' : a));
}

test('the README tour runs as written: synth, check, train, predict, evaluate, export, view', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-tour-'));
  try {
    const commands = tourCommands();
    assert.deepEqual(commands.map((c) => c.slice(0, 2).join(' ')), ['avap synth', 'avap data', 'avap train', 'avap predict', 'avap evaluate', 'avap export', 'avap view']);
    for (const command of commands.slice(0, -1)) {
      assert.equal(command[0], 'avap');
      const r = spawnSync(process.execPath, [CLI, ...shortened(command.slice(1))], { cwd: dir, env: ENV, encoding: 'utf8' });
      assert.equal(r.status, 0, `${command.join(' ')}\n${r.stderr}`);
    }
    const pred = path.join(dir, 'tour', 'pred');
    const predicted = fs.readdirSync(pred).filter((f) => fs.statSync(path.join(pred, f)).isDirectory());
    assert.equal(predicted.length, 1, 'predict wrote one case');
    for (const f of ['disc_mean.png', 'cup_mean.png', 'cup_annotator4.png', 'overlay.png']) assert.ok(fs.existsSync(path.join(pred, predicted[0], f)), f);
    const summary = JSON.parse(fs.readFileSync(path.join(dir, 'tour', 'eval', 'summary.json'), 'utf8'));
    assert.ok(summary.mean_voting.cup >= 0 && summary.mean_voting.cup <= 1);
    assert.ok(fs.statSync(path.join(dir, 'tour', 'avap.onnx')).size > 1e6);

    // The viewer, on any free port: the page and the model it names are served.
    const view = commands[commands.length - 1];
    const child = spawn(process.execPath, [CLI, ...view.slice(1), '--port', '0'], { cwd: dir, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
          if (m) resolve(m[1]);
        });
        child.on('close', (code) => reject(new Error(`avap view exited with ${code}`)));
      });
      assert.equal((await fetch(url)).status, 200);
      assert.equal((await fetch(`${url}model.onnx`)).headers.get('content-length'), String(fs.statSync(path.join(dir, 'tour', 'avap.onnx')).size));
    } finally {
      child.kill('SIGTERM');
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchor(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

test('every relative link in the README and docs/ names a file that exists, and an anchor that its headings make', () => {
  const pages = ['README.md', 'CHANGELOG.md', ...fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f))];
  const broken: string[] = [];
  for (const page of pages) {
    const text = fs.readFileSync(path.join(root, page), 'utf8');
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue;
      const [file, hash] = target.split('#');
      const resolved = file ? path.join(root, path.dirname(page), file) : path.join(root, page);
      if (!fs.existsSync(resolved)) { broken.push(`${page}: ${target} (no such file)`); continue; }
      if (hash && resolved.endsWith('.md')) {
        const headings = fs.readFileSync(resolved, 'utf8').split('\n').filter((l) => /^#{1,6} /.test(l)).map((l) => anchor(l.replace(/^#+ /, '')));
        if (!headings.includes(hash)) broken.push(`${page}: ${target} (no such heading)`);
      }
    }
  }
  assert.deepEqual(broken, []);
});
