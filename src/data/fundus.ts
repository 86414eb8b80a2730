/**
 * Renders a synthetic colour fundus crop around the optic disc, made to be as hard to read as a real
 * photograph rather than as easy as a drawing:
 *
 * - the disc is a clearly brighter, yellower region with a soft rim, paler on its temporal side, and
 *   in some images a pale crescent of peripapillary atrophy just outside it (a false edge);
 * - the cup is *not* a bright blob: its only cues are a slight pallor (a few percent of brightness,
 *   centred and sized a little differently from the cup itself, over a wide soft edge) and the vessels,
 *   which leave the cup's floor thin and faint and bend sharply where they climb over its rim;
 * - illumination (direction, strength, vignetting), colour cast, gain, blur and noise change from image
 *   to image, as they do between cameras and patients.
 *
 * The cup's size must therefore be read from weak, local evidence — which is where a method that only
 * learns a prior "typical cup" fails, as it does on real RIGA images.
 */
import { Rng } from '../util/random';
import { resizeBilinear } from './resize';

/** An ellipse in pixel coordinates; angle in radians (rotation of the x semi-axis). */
export interface Ellipse {
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  angle: number;
}

/** Normalised radius of a point w.r.t. an ellipse (< 1 inside), with the trigonometry done once. */
export function ellipseRho(e: Ellipse): (px: number, py: number) => number {
  const c = Math.cos(e.angle);
  const s = Math.sin(e.angle);
  const irx = 1 / e.rx;
  const iry = 1 / e.ry;
  return (px, py) => {
    const dx = px - e.cx;
    const dy = py - e.cy;
    const u = (dx * c + dy * s) * irx;
    const v = (-dx * s + dy * c) * iry;
    return Math.sqrt(u * u + v * v);
  };
}

/** Smooth noise in [-1, 1]: a random grid×grid lattice, bilinearly enlarged. */
function valueNoise(rng: Rng, grid: number, size: number): Float32Array {
  const lattice = new Float32Array(grid * grid);
  for (let i = 0; i < lattice.length; i++) lattice[i] = rng.uniform(-1, 1);
  return resizeBilinear(lattice, grid, grid, 1, size, size);
}

/** Blurs a planar float image in place with two passes of a (2r+1) box, ≈ a Gaussian of σ ≈ r. */
function boxBlur(img: Float32Array, channels: number, size: number, radius: number): void {
  if (radius < 1) return;
  const line = new Float32Array(size);
  const plane = size * size;
  const width = 2 * radius + 1;
  const pass = (stride: number, step: number) => {
    for (let c = 0; c < channels; c++) {
      for (let l = 0; l < size; l++) {
        const base = c * plane + l * stride;
        for (let i = 0; i < size; i++) line[i] = img[base + i * step];
        // Running sum with edge clamping: O(1) per pixel whatever the radius.
        let acc = 0;
        for (let k = -radius; k <= radius; k++) acc += line[Math.min(size - 1, Math.max(0, k))];
        for (let i = 0; i < size; i++) {
          img[base + i * step] = acc / width;
          acc += line[Math.min(size - 1, i + radius + 1)] - line[Math.max(0, i - radius)];
        }
      }
    }
  };
  for (let p = 0; p < 2; p++) {
    pass(size, 1); // rows
    pass(1, size); // columns
  }
}

/** smoothstep from 0 at `edge0` to 1 at `edge1`. */
function smooth(edge0: number, edge1: number, x: number): number {
  const t = Math.min(1, Math.max(0, (x - edge0) / (edge1 - edge0)));
  return t * t * (3 - 2 * t);
}

/** A vessel map: per pixel, how much vessel covers it (0..1) and how deep it lies (1 on the surface). */
class VesselCanvas {
  readonly cover: Float32Array;
  readonly visibility: Float32Array;

  constructor(readonly size: number) {
    this.cover = new Float32Array(size * size);
    this.visibility = new Float32Array(size * size);
  }

  /** An antialiased segment of width w; `visibility` < 1 for a vessel seen through tissue (inside the cup). */
  segment(x0: number, y0: number, x1: number, y1: number, w: number, visibility: number): void {
    const size = this.size;
    const half = w / 2;
    const minX = Math.max(0, Math.floor(Math.min(x0, x1) - half - 1));
    const maxX = Math.min(size - 1, Math.ceil(Math.max(x0, x1) + half + 1));
    const minY = Math.max(0, Math.floor(Math.min(y0, y1) - half - 1));
    const maxY = Math.min(size - 1, Math.ceil(Math.max(y0, y1) + half + 1));
    const dx = x1 - x0;
    const dy = y1 - y0;
    const len2 = dx * dx + dy * dy || 1e-9;
    for (let y = minY; y <= maxY; y++) {
      for (let x = minX; x <= maxX; x++) {
        const px = x + 0.5 - x0;
        const py = y + 0.5 - y0;
        const t = Math.max(0, Math.min(1, (px * dx + py * dy) / len2));
        const ex = px - t * dx;
        const ey = py - t * dy;
        const a = Math.min(1, half + 0.5 - Math.sqrt(ex * ex + ey * ey));
        const i = y * size + x;
        if (a > 0 && a * visibility > this.cover[i] * this.visibility[i]) {
          this.cover[i] = a;
          this.visibility[i] = visibility;
        }
      }
    }
  }
}

/**
 * The vascular tree: trunks rise from the cup's floor (thin and faint there, as they lie deep), bend
 * sharply where they climb over the cup's rim — the "kink" an ophthalmologist reads the cup edge from —
 * and then run as superior and inferior arcades over the disc rim and out, branching; a few more
 * vessels cross the disc from outside.
 */
function drawVessels(rng: Rng, size: number, cup: Ellipse, disc: Ellipse, temporal: number): VesselCanvas {
  const f = size / 256;
  const canvas = new VesselCanvas(size);
  const inCup = ellipseRho(cup);
  const cupR = Math.sqrt(cup.rx * cup.ry);
  const step = 3 * f;
  let budget = 4000; // segments, bounds the work per case
  const grow = (start: { x: number; y: number; heading: number; width: number }, kink: number, maxSteps: number) => {
    let { x, y, heading, width } = start;
    let wasInside = inCup(x, y) < 1;
    const stack: typeof start[] = [];
    for (let s = 0; s < maxSteps && budget > 0; s++, budget--) {
      heading += rng.normal(0, 0.07);
      const nx = x + step * Math.cos(heading);
      const ny = y + step * Math.sin(heading);
      const inside = inCup(nx, ny) < 1;
      // Inside the cup the vessel lies deep in the excavation: narrower and seen through tissue.
      canvas.segment(x, y, nx, ny, inside ? width * 0.65 : width, inside ? 0.45 : 1);
      if (wasInside && !inside) heading += kink; // climbing over the rim
      wasInside = inside;
      x = nx;
      y = ny;
      width = Math.max(0.8 * f, width * 0.995);
      if (x < -step || y < -step || x > size + step || y > size + step) break;
      if (!inside && rng.bernoulli(0.025) && width > 1.4 * f && stack.length < 6) {
        stack.push({ x, y, heading: heading + (rng.bernoulli(0.5) ? 1 : -1) * rng.uniform(0.5, 1.0), width: width * 0.7 });
      }
    }
    for (const branch of stack) grow(branch, 0, 120);
  };
  // Central trunks: up and down from a point on the cup's floor on its nasal side, 2–3 each way.
  const ox = cup.cx - temporal * rng.uniform(0.1, 0.35) * cupR;
  const oy = cup.cy + rng.normal(0, 0.1 * cupR);
  const trunks = 4 + rng.int(3);
  for (let t = 0; t < trunks; t++) {
    const up = t % 2 === 0;
    const heading = (up ? -Math.PI / 2 : Math.PI / 2) + rng.uniform(-0.6, 0.6);
    const kink = (rng.bernoulli(0.5) ? 1 : -1) * rng.uniform(0.5, 1.1);
    grow({ x: ox + rng.normal(0, 0.08 * cupR), y: oy + rng.normal(0, 0.08 * cupR), heading, width: f * rng.uniform(4, 6.5) }, kink, 260);
  }
  // Vessels crossing the disc without entering the cup (cilioretinal and small branches).
  const crossing = rng.int(3);
  const discR = Math.sqrt(disc.rx * disc.ry);
  for (let t = 0; t < crossing; t++) {
    const a = rng.uniform(0, 2 * Math.PI);
    const x = disc.cx + 1.4 * discR * Math.cos(a);
    const y = disc.cy + 1.4 * discR * Math.sin(a);
    const heading = a + Math.PI + rng.uniform(-0.5, 0.5);
    grow({ x, y, heading, width: f * rng.uniform(1.6, 3) }, 0, 150);
  }
  return canvas;
}

/** The anatomy one image shows, in pixel coordinates. */
export interface FundusAnatomy {
  disc: Ellipse;
  cup: Ellipse;
  /** +1 when the temporal side (paler rim, away from where the vessels leave) is to the right, −1 to the left. */
  temporal: 1 | -1;
}

/** How the camera saw this image: colour cast, gain, illumination ramp, vignetting and texture. */
interface Acquisition {
  base: number[];
  cast: number[];
  gain: number;
  rampAngle: number;
  ramp: number;
  vcx: number;
  vcy: number;
  vignette: number;
  coarse: Float32Array;
  fine: Float32Array;
  tint: Float32Array;
  texture: number;
}

function drawAcquisition(rng: Rng, S: number): Acquisition {
  return {
    base: [rng.uniform(150, 215), rng.uniform(48, 95), rng.uniform(14, 42)],
    cast: [1 + rng.normal(0, 0.06), 1 + rng.normal(0, 0.08), 1 + rng.normal(0, 0.1)],
    gain: rng.uniform(0.72, 1.15),
    rampAngle: rng.uniform(0, 2 * Math.PI),
    ramp: rng.uniform(0, 0.35),
    vcx: S * rng.uniform(0.2, 0.8),
    vcy: S * rng.uniform(0.2, 0.8),
    vignette: rng.uniform(0.1, 0.5),
    coarse: valueNoise(rng, 5, S),
    fine: valueNoise(rng, 20, S),
    tint: valueNoise(rng, 4, S),
    texture: rng.uniform(0.03, 0.1),
  };
}

/** How the disc and the cup's pallor look: colour, opacity, rim softness, temporal paleness. */
interface DiscLook {
  colour: number[];
  opacity: number;
  edge: number;
  temporalPallor: number;
  pallorStrength: number;
  pallor: Ellipse;
  pallorSoftness: number;
}

/** The pallor is a faint brightening loosely tied to the cup: its centre and size differ a little. */
function drawDiscLook(rng: Rng, cup: Ellipse, f: number): DiscLook {
  const cupR = Math.sqrt(cup.rx * cup.ry);
  const colour = [rng.uniform(225, 250), rng.uniform(140, 185), rng.uniform(80, 125)];
  const opacity = rng.uniform(0.55, 0.85);
  const edge = rng.uniform(2, 5) * f;
  const temporalPallor = rng.uniform(0.04, 0.15);
  const pallorStrength = rng.uniform(0.03, 0.12);
  const pallor: Ellipse = {
    cx: cup.cx + rng.normal(0, 0.1 * cupR), cy: cup.cy + rng.normal(0, 0.1 * cupR),
    rx: cup.rx * rng.uniform(0.85, 1.1), ry: cup.ry * rng.uniform(0.85, 1.1), angle: cup.angle + rng.normal(0, 0.2),
  };
  const pallorSoftness = rng.uniform(0.3, 0.6);
  return { colour, opacity, edge, temporalPallor, pallorStrength, pallor, pallorSoftness };
}

/** Peripapillary atrophy, in some images: a pale, irregular crescent just outside the disc, mostly temporal. */
interface Atrophy {
  present: boolean;
  angle: number;
  width: number;
  strength: number;
  noise: Float32Array;
}

function drawAtrophy(rng: Rng, temporal: 1 | -1, S: number): Atrophy {
  return {
    present: rng.bernoulli(0.35),
    angle: (temporal > 0 ? 0 : Math.PI) + rng.normal(0, 0.6),
    width: rng.uniform(0.08, 0.2),
    strength: rng.uniform(0.15, 0.35),
    noise: valueNoise(rng, 8, S),
  };
}

/** The background, the atrophy crescent, the disc and the pallor, as planar float RGB. */
function paintFundus(S: number, { disc, temporal }: FundusAnatomy, light: Acquisition, look: DiscLook, atrophy: Atrophy): Float32Array {
  const plane = S * S;
  const discR = Math.sqrt(disc.rx * disc.ry);
  const { base, cast, gain, rampAngle, ramp, vcx, vcy, vignette, coarse, fine, tint, texture } = light;
  const discColour = look.colour;
  const discRho = ellipseRho(disc);
  const pallorRho = ellipseRho(look.pallor);
  const img = new Float32Array(3 * plane);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const i = y * S + x;
      const px = x + 0.5;
      const py = y + 0.5;
      const along = ((px - S / 2) * Math.cos(rampAngle) + (py - S / 2) * Math.sin(rampAngle)) / S;
      const v = Math.hypot(px - vcx, py - vcy) / S;
      const brightness = gain * Math.max(0.3, (1 + ramp * along) * (1 - vignette * v * v)) * (1 + texture * coarse[i] + 0.5 * texture * fine[i]);
      let r = base[0] * (1 + 0.03 * tint[i]);
      let g = base[1] * (1 - 0.05 * tint[i]);
      let b = base[2];

      const rhoD = discRho(px, py);
      if (atrophy.present && rhoD > 0.95 && rhoD < 1 + atrophy.width + 0.1) {
        const dAngle = Math.atan2(py - disc.cy, px - disc.cx) - atrophy.angle;
        const arc = Math.max(0, Math.cos(dAngle)) ** 2;
        const band = smooth(0.95, 1.0, rhoD) * (1 - smooth(1 + atrophy.width * (0.7 + 0.3 * atrophy.noise[i]), 1 + atrophy.width + 0.1, rhoD));
        const a = atrophy.strength * arc * band;
        r += (discColour[0] - r) * a;
        g += (discColour[1] * 0.9 - g) * a;
        b += (discColour[2] * 0.9 - b) * a;
      }
      // Disc opacity falls off over `look.edge` pixels around the rim.
      const aD = look.opacity * Math.min(1, Math.max(0, (1 - rhoD) * (discR / look.edge) + 0.5));
      if (aD > 0) {
        const side = 1 + look.temporalPallor * Math.max(0, (temporal * (px - disc.cx)) / discR);
        r += (Math.min(255, discColour[0] * side) - r) * aD;
        g += (Math.min(255, discColour[1] * side) - g) * aD;
        b += (Math.min(255, discColour[2] * side) - b) * aD;
        const aP = look.pallorStrength * (1 - smooth(1 - look.pallorSoftness, 1 + look.pallorSoftness, pallorRho(px, py)));
        r += (255 - r) * aP;
        g += (235 - g) * aP;
        b += (210 - b) * aP;
      }
      img[i] = r * cast[0] * brightness;
      img[plane + i] = g * cast[1] * brightness;
      img[2 * plane + i] = b * cast[2] * brightness;
    }
  }
  return img;
}

/** Darkens the painted image where vessels run, in a vessel colour drawn per image. */
function overlayVessels(rng: Rng, img: Float32Array, S: number, { disc, cup, temporal }: FundusAnatomy): void {
  const plane = S * S;
  const vessels = drawVessels(rng, S, cup, disc, temporal);
  const vesselTint = [rng.uniform(0.45, 0.6), rng.uniform(0.3, 0.42), rng.uniform(0.35, 0.5)];
  const vesselContrast = rng.uniform(0.6, 0.85);
  for (let i = 0; i < plane; i++) {
    const a = vessels.cover[i] * vessels.visibility[i] * vesselContrast;
    if (a > 0) for (let c = 0; c < 3; c++) img[c * plane + i] *= 1 - a * (1 - vesselTint[c]);
  }
}

/** Optical blur and sensor noise, then 8-bit interleaved RGB. */
function develop(rng: Rng, img: Float32Array, S: number, f: number): Uint8Array {
  const plane = S * S;
  boxBlur(img, 3, S, Math.round(rng.uniform(0.6, 2.4) * f));
  const noise = rng.uniform(1, 4.5);
  const image = new Uint8Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      const value = Math.round(img[c * plane + i] + rng.normal(0, noise));
      image[i * 3 + c] = value < 0 ? 0 : value > 255 ? 255 : value;
    }
  }
  return image;
}

/**
 * Renders an image of side `size`; returns interleaved RGB (HWC, 8-bit). The random draws happen in
 * a fixed order (acquisition, disc, atrophy, vessels, blur and noise), so a seed gives one image.
 */
export function renderFundus(rng: Rng, size: number, anatomy: FundusAnatomy): Uint8Array {
  const f = size / 256;
  const light = drawAcquisition(rng, size);
  const look = drawDiscLook(rng, anatomy.cup, f);
  const atrophy = drawAtrophy(rng, anatomy.temporal, size);
  const img = paintFundus(size, anatomy, light, look, atrophy);
  overlayVessels(rng, img, size, anatomy);
  return develop(rng, img, size, f);
}
