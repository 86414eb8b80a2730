import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { UserError } from '../errors';
import { exportRun } from '../export/export';
import { DEFAULT_OPSET, OPSET_RANGE } from '../export/onnx';
import { writeFileAtomic } from '../io/atomic';
import { checkOutputFolder } from '../io/outputFolder';
import { checkNotRunFiles } from '../train/run';
import { planSite, viewerSite } from '../viewer/site';
import { parseAnnotatorList, parseIntFlag } from '../util/flags';

/** --out must name a file that is neither a folder nor one of a run's own files. */
function checkOutFile(out: string): void {
  if (out.trim() === '') throw new UserError('--out: the path is empty; give a file name such as model.onnx');
  if (fs.existsSync(out) && fs.statSync(out).isDirectory()) throw new UserError(`--out: ${out} is a folder; give a file name such as ${out}/model.onnx`);
  const parent = path.dirname(path.resolve(out));
  if (fs.existsSync(parent) && !fs.statSync(parent).isDirectory()) throw new UserError(`--out: ${out} cannot be created: ${parent} is a file, not a folder`);
  checkOutputFolder('--out', parent);
  checkNotRunFiles('--out', out);
}

/** --viewer must name a folder that can be one and is not a run's. */
function checkViewerFolder(dir: string): void {
  if (dir.trim() === '') throw new UserError('--viewer: the path is empty; give a folder such as viewer/');
  checkOutputFolder('--viewer', dir);
  checkNotRunFiles('--viewer', dir);
}

/**
 * `avap export`: parses flags and calls exportRun() (and writes the viewer folder with --viewer).
 * Every flag is checked, and the model exported in memory, before anything is written: a bad
 * --viewer must not leave the .onnx file behind.
 */
export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .description('write a trained model as one ONNX file (input: the image in [0, 1] at the training size; outputs: calibrated and per-annotator maps)')
    .requiredOption('--model <run>', 'a trained run folder (from avap train)')
    .requiredOption('--out <file>', 'the ONNX file to write, e.g. model.onnx')
    .option('--opset <n>', `ONNX opset (${OPSET_RANGE[0]}..${OPSET_RANGE[1]})`, String(DEFAULT_OPSET))
    .option('--annotators <list>', "'all' or 1-based annotator numbers to give outputs, e.g. 1,3", 'all')
    .option('--viewer <dir>', 'also write the browser viewer with this model into <dir> (serve it with any static web server)')
    .action((o: { model: string; out: string; opset: string; annotators: string; viewer?: string }) => {
      const opset = parseIntFlag('--opset', o.opset, OPSET_RANGE[0], OPSET_RANGE[1]);
      const annotators = parseAnnotatorList(o.annotators);
      checkOutFile(o.out);
      if (o.viewer !== undefined) checkViewerFolder(o.viewer);
      const exported = exportRun(o.model, null, { opset, annotators });
      const site = o.viewer !== undefined ? planSite(viewerSite(exported), o.viewer) : null;
      writeFileAtomic(o.out, exported.bytes);
      const mb = (exported.bytes.byteLength / 2 ** 20).toFixed(1);
      process.stdout.write(`wrote ${o.out} (${mb} MiB, opset ${opset}, ${exported.info.outputs.length} outputs: ${exported.info.outputs.map((x) => x.name).join(', ')}) in ${exported.seconds.toFixed(1)} s\n`);
      if (site) {
        site.write();
        process.stdout.write(`wrote the viewer to ${o.viewer} (serve the folder over HTTP, e.g. python3 -m http.server -d ${o.viewer})\n`);
      }
    });
}
