import * as fs from 'node:fs';
import sharp from 'sharp';
import { UserError } from '../errors';
import { writeFileAtomic } from './atomic';

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
  if (!fs.existsSync(file)) throw new UserError(`${file}: file not found`);
  try {
    const meta = await sharp(file).metadata();
    const bitDepth: 8 | 16 = meta.depth === 'ushort' || meta.depth === 'short' ? 16 : 8;
    const grey = (meta.channels ?? 3) <= 2;
    let pipeline = sharp(file, { failOn: 'truncated' }).removeAlpha();
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
  if (!fs.existsSync(file)) throw new UserError(`${file}: file not found`);
  try {
    const meta = await sharp(file).metadata();
    if (!meta.width || !meta.height) throw new Error('no image size in header');
    const bitDepth: 8 | 16 = meta.depth === 'ushort' || meta.depth === 'short' ? 16 : 8;
    const channels = (meta.channels ?? 3) - (meta.hasAlpha ? 1 : 0);
    return { width: meta.width, height: meta.height, channels, bitDepth };
  } catch (err) {
    throw new UserError(`${file}: cannot decode image (${firstLine((err as Error).message)})`);
  }
}

function firstLine(message: string): string {
  return message.split('\n')[0].trim();
}
