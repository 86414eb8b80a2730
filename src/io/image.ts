import sharp from 'sharp';
import { UserError } from '../errors';
import { writeFileAtomic } from './atomic';
import { MiB, checkRegularFile, formatBytes, readBounded } from './readBounded';

/**
 * The memory one decoded image may take (width × height × channels × bytes per sample), checked from
 * the header before any pixel is decoded. 256 MiB holds a 16-bit RGB image of 6600 × 6600 or an 8-bit
 * RGB one of 9400 × 9400, several times the largest fundus camera's; decoding, resizing and the
 * float copies take about ten times the decoded size at the peak, so one image at the limit stays
 * near 2.5 GiB. AVAP_IMAGE_MEMORY_MB raises (or lowers) it.
 */
export const DEFAULT_IMAGE_MEMORY_MB = 256;
const BUDGET_VARIABLE = 'AVAP_IMAGE_MEMORY_MB';

export function imageMemoryBudget(): number {
  const raw = process.env[BUDGET_VARIABLE];
  if (raw === undefined || raw === '') return DEFAULT_IMAGE_MEMORY_MB * MiB;
  const mb = Number(raw);
  if (!Number.isFinite(mb) || mb <= 0) throw new UserError(`${BUDGET_VARIABLE} must be a positive number of MiB, got '${raw}'`);
  return mb * MiB;
}

const BYTES_PER_SAMPLE: Record<string, number> = { uchar: 1, char: 1, ushort: 2, short: 2, uint: 4, int: 4, float: 4, complex: 8, double: 8, dpcomplex: 16 };

/** Refuses an image whose decoded pixels would exceed the memory budget, from its header alone. */
function checkDecodedSize(file: string, meta: sharp.Metadata): void {
  const { width, height } = meta;
  if (!width || !height) throw new UserError(`${file}: cannot decode image (no image size in header)`);
  const channels = meta.channels ?? 3;
  const bytes = width * height * channels * (BYTES_PER_SAMPLE[meta.depth ?? 'uchar'] ?? 8);
  const budget = imageMemoryBudget();
  if (bytes > budget) {
    throw new UserError(
      `${file}: a ${width}×${height} image of ${channels} channel${channels === 1 ? '' : 's'} at ${meta.depth ?? 'uchar'} decodes to ${formatBytes(bytes)}, ` +
        `over the ${formatBytes(budget)} memory budget for one image (set ${BUDGET_VARIABLE} to raise it)`,
    );
  }
}

/** How to allow more, for a file whose compressed size alone is over the budget. */
const RAISE = `set ${BUDGET_VARIABLE} to raise it`;

/** Decoded pixels, interleaved (HWC), at the file's own bit depth. */
export interface RawImage {
  width: number;
  height: number;
  channels: number;
  bitDepth: 8 | 16;
  data: Uint8Array | Uint16Array;
  /** The file had an alpha channel, which reading dropped (`channels` excludes it). */
  alpha?: boolean;
}

/**
 * Decodes a PNG, JPEG or TIFF without changing its bit depth or channel count
 * (sharp would otherwise expand greyscale to sRGB). Alpha is dropped.
 * A missing, truncated or undecodable file becomes a UserError naming it.
 */
export async function readImage(file: string): Promise<RawImage> {
  const bytes = readBounded(file, imageMemoryBudget(), 'one image', RAISE);
  try {
    const meta = await sharp(bytes).metadata();
    checkDecodedSize(file, meta);
    const bitDepth: 8 | 16 = meta.depth === 'ushort' || meta.depth === 'short' ? 16 : 8;
    const grey = (meta.channels ?? 3) <= 2;
    let pipeline = sharp(bytes, { failOn: 'truncated' }).removeAlpha();
    pipeline = grey ? pipeline.toColourspace(bitDepth === 16 ? 'grey16' : 'b-w') : pipeline.toColourspace(bitDepth === 16 ? 'rgb16' : 'srgb');
    const { data, info } = await pipeline.raw({ depth: bitDepth === 16 ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
    const pixels = bitDepth === 16
      ? new Uint16Array(data.buffer, data.byteOffset, data.length / 2).slice()
      : new Uint8Array(data.buffer, data.byteOffset, data.length).slice();
    return { width: info.width, height: info.height, channels: info.channels, bitDepth, data: pixels, alpha: meta.hasAlpha === true };
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${file}: cannot decode image (${firstLine((err as Error).message)})`);
  }
}

/** Writes an 8- or 16-bit greyscale or RGB PNG atomically. `data` is interleaved HWC. */
export async function writePng(file: string, image: RawImage): Promise<void> {
  writeFileAtomic(file, await encodePng(image));
}

/**
 * Encodes an 8- or 16-bit greyscale or RGB PNG in memory (`data` interleaved HWC). For writers of
 * many files (synthetic data, conversion) that commit the whole folder with one final atomic write
 * instead of paying an fsync per file. The encoding is deterministic: same pixels, same bytes.
 */
export async function encodePng(image: RawImage, compressionLevel = 6): Promise<Buffer> {
  const { width, height, channels, bitDepth, data } = image;
  if (data.length !== width * height * channels) {
    throw new Error(`encodePng: data has ${data.length} values, expected ${width}x${height}x${channels}`);
  }
  const colourspace = channels === 1 ? (bitDepth === 16 ? 'grey16' : 'b-w') : bitDepth === 16 ? 'rgb16' : 'srgb';
  // sharp takes the sample depth from the array type: a Uint16Array must be passed as such.
  return sharp(data, { raw: { width, height, channels: channels as 1 | 3 | 4, ...(bitDepth === 16 ? { depth: 'ushort' as const } : {}) } })
    .toColourspace(colourspace)
    .png({ compressionLevel })
    .toBuffer();
}

/** Width, height, channels (alpha excluded) and bit depth from the file header, without decoding pixels. */
export async function readImageInfo(file: string): Promise<{ width: number; height: number; channels: number; bitDepth: 8 | 16 }> {
  const meta = await readImageHeader(file);
  const bitDepth: 8 | 16 = meta.depth === 'ushort' || meta.depth === 'short' ? 16 : 8;
  const channels = (meta.channels ?? 3) - (meta.hasAlpha ? 1 : 0);
  return { width: meta.width!, height: meta.height!, channels, bitDepth };
}

/**
 * The header of an image file (a regular file within the budget, whose decoded pixels would fit the
 * budget), read without decoding pixels. A UserError naming the file otherwise.
 */
export async function readImageHeader(file: string): Promise<sharp.Metadata> {
  checkRegularFile(file, imageMemoryBudget(), 'one image', RAISE);
  let meta: sharp.Metadata;
  try {
    meta = await sharp(file).metadata();
  } catch (err) {
    throw new UserError(`${file}: cannot decode image (${firstLine((err as Error).message)})`);
  }
  checkDecodedSize(file, meta);
  return meta;
}

function firstLine(message: string): string {
  return message.split('\n')[0].trim();
}
