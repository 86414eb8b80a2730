import { Command } from 'commander';
import { runDemo } from '../demo/demo';
import { perStructure } from '../util/format';

/** `avap demo`: the project's main job on its built-in synthetic data. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('generate the synthetic dataset, train AVAP, evaluate it on unseen cases, write summary.json, report.md and figure.png')
    .option('--out <dir>', 'output folder', 'demo-out')
    .option('--quick', 'smaller run (about 2 minutes on 2 cores)', false)
    .action(async (o: { out: string; quick: boolean }) => {
      const r = await runDemo({ out: o.out, quick: o.quick });
      const s = Object.keys(r.calibrated_for_every_annotator.average);
      const pair = (rec: Record<string, number | null>) => perStructure(s, (k) => rec[k]);
      process.stdout.write(`${r.line}\n`);
      process.stdout.write(`Average with the calibrated map for every annotator: ${pair(r.calibrated_for_every_annotator.average)} (AVAP: ${pair(r.avap.average)})\n`);
      process.stdout.write(`Own prediction closest to own annotation: ${s.map((k) => `${k} ${r.identified[k].count}/${r.identified[k].of}`).join(', ')}\n`);
      process.stdout.write(`Wrote ${o.out}/summary.json, ${o.out}/report.md, ${o.out}/figure.png (${r.seconds} s)\n`);
    });
}
