import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { datasetJsonSchema, parseDatasetJson, resolveStructures } from '../src/data/schema';

const schemaFile = path.join(__dirname, '..', '..', 'schema', 'dataset.schema.json');
const jsonSchema = JSON.parse(fs.readFileSync(schemaFile, 'utf8'));

const valid = {
  name: 'x',
  annotators: ['A1', 'A2'],
  structures: [{ name: 'disc', values: [128], contains: ['cup'] }, { name: 'cup', values: [255] }],
  channels: 3,
};

test('schema/dataset.schema.json and the zod schema describe the same fields', () => {
  const zodKeys = Object.keys(datasetJsonSchema.innerType().shape).sort();
  assert.deepEqual(Object.keys(jsonSchema.properties).sort(), zodKeys);
  const requiredByZod = zodKeys.filter((k) => !datasetJsonSchema.innerType().shape[k as keyof typeof valid].isOptional()).filter((k) => k !== 'background');
  assert.deepEqual([...jsonSchema.required].sort(), requiredByZod.sort());
  // The JSON Schema's example is a valid dataset.json.
  for (const ex of jsonSchema.examples) assert.ok(parseDatasetJson(JSON.stringify(ex)).ok);
});

test('a valid dataset.json parses with defaults', () => {
  const r = parseDatasetJson(JSON.stringify(valid));
  assert.ok(r.ok);
  assert.deepEqual(r.value.background, [0]);
});

const invalid: { name: string; json: unknown; error: RegExp }[] = [
  { name: 'channels 2', json: { ...valid, channels: 2 }, error: /^channels: / },
  { name: 'misspelt key', json: { ...valid, annotator: ['A1'] }, error: /Unrecognized key\(s\) in object: 'annotator'/ },
  { name: 'duplicate annotator', json: { ...valid, annotators: ['A1', 'A1'] }, error: /^annotators: annotator 'A1' is listed twice/ },
  { name: 'annotator name with a slash', json: { ...valid, annotators: ['a/b'] }, error: /^annotators\[0\]: an annotator name must start with a letter or digit/ },
  { name: 'nesting an unknown structure', json: { ...valid, structures: [{ name: 'disc', values: [1], contains: ['rim'] }] }, error: /^structures\[0\]\.contains: unknown structure 'rim'/ },
  { name: 'a nesting cycle', json: { ...valid, structures: [{ name: 'a', values: [1], contains: ['b'] }, { name: 'b', values: [2], contains: ['a'] }] }, error: /nesting rules form a cycle: a ⊃ b ⊃ a/ },
  { name: 'one value for two structures', json: { ...valid, structures: [{ name: 'a', values: [1] }, { name: 'b', values: [1] }] }, error: /^structures\[1\]\.values: value 1 is already used by a/ },
  { name: 'a structure value that is background', json: { ...valid, structures: [{ name: 'a', values: [0] }] }, error: /value 0 is already used by background/ },
  { name: 'a structure with nothing', json: { ...valid, structures: [{ name: 'a' }] }, error: /structure 'a' has neither values nor contains/ },
  { name: 'a 17-bit value', json: { ...valid, structures: [{ name: 'a', values: [70000] }] }, error: /^structures\[0\]\.values\[0\]: Number must be less than or equal to 65535/ },
  { name: 'nine structures', json: { ...valid, structures: Array.from({ length: 9 }, (_, i) => ({ name: `s${i}`, values: [i + 1] })) }, error: /^structures: Array must contain at most 8/ },
  { name: 'a modality per channel, too few', json: { ...valid, modality: ['CT'] }, error: /^modality: lists 1 modalities for 3 channel\(s\)/ },
  { name: 'an empty modality name', json: { ...valid, modality: ['CT', '', 'CT'] }, error: /^modality\[1\]: / },
  { name: 'not JSON', json: '{', error: /^invalid JSON/ },
];
for (const c of invalid) {
  test(`dataset.json rejected: ${c.name}`, () => {
    const r = parseDatasetJson(typeof c.json === 'string' ? c.json : JSON.stringify(c.json));
    assert.ok(!r.ok);
    assert.ok(r.errors.some((e) => c.error.test(e)), r.errors.join(' | '));
  });
}

test('resolveStructures: nesting is transitive', () => {
  const s = resolveStructures({ structures: [{ name: 'a', values: [1], contains: ['b'] }, { name: 'b', values: [2], contains: ['c'] }, { name: 'c', values: [3] }] });
  assert.deepEqual(s.map((x) => x.values), [[1, 2, 3], [2, 3], [3]]);
});
