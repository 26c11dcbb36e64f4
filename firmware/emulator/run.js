#!/usr/bin/env node
// Boots a focus board image (.uf2) on rp2040js, the RP2040 emulator, and connects it to this
// process: the chip's USB CDC serial is stdin (to the board) and stdout (from the board); the
// pins named on the command line are watched and their edges written to the events file as JSON
// lines, stamped with the emulated time in ns:
//   {"t": 1234, "pin": "step", "level": 1}            an output edge (level null: not driven)
//   {"t": 1234, "pin": "leds", "ws2812": [g, r, b, ...]}  one WS2812 frame, bytes as sent
//   {"t": 1234, "event": "usb"}                    the host enumerated the board's USB
//   {"t": 1234, "event": "rx", "bytes": 12}        bytes from the host reached the runner
//   {"t": 1234, "event": "watchdog"}               the watchdog fired (the runner then exits)
//   {"t": 1234, "event": "tick"}                   every 50 ms: emulated time goes on
//
//   node run.js --image focusboard.uf2 --events pins.jsonl --pin step=2 --pin dir=3 \
//        --ws2812 leds=16 --high 6 --high 22
//
// --high N holds input pin N high (an open switch against its pull-up: the endstop, the
// maintenance jumper), as on a board with nothing closed.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { GPIOPinState, Simulator, USBCDC } from 'rp2040js';
import { bootromB1 } from './bootrom.js';

const FLASH_START = 0x10000000;
const UF2_MAGIC = [0x0a324655, 0x9e5d5157];
const WS2812_ONE_NS = 625; // a high pulse longer than this is a 1 bit (0: 400 ns, 1: 800 ns)
const WS2812_LATCH_NS = 50_000; // low this long ends a frame
const TICK_NS = 50_000_000;

const { values } = parseArgs({
  options: {
    image: { type: 'string' },
    events: { type: 'string' },
    pin: { type: 'string', multiple: true, default: [] },
    ws2812: { type: 'string', multiple: true, default: [] },
    high: { type: 'string', multiple: true, default: [] },
  },
});
if (!values.image || !values.events) {
  process.stderr.write('usage: run.js --image IMAGE.uf2 --events FILE [--pin NAME=GPIO]...\n');
  process.exit(2);
}

const simulator = new Simulator();
const mcu = simulator.rp2040;
const clock = simulator.clock;
const events = fs.openSync(values.events, 'w');

function emit(record) {
  fs.writeSync(events, JSON.stringify({ t: Math.round(clock.nanos), ...record }) + '\n');
}

function loadUF2(path) {
  const data = fs.readFileSync(path);
  for (let offset = 0; offset + 512 <= data.length; offset += 512) {
    const block = new DataView(data.buffer, data.byteOffset + offset, 512);
    if (block.getUint32(0, true) !== UF2_MAGIC[0] || block.getUint32(4, true) !== UF2_MAGIC[1]) {
      throw new Error(`${path}: block ${offset / 512} is not a UF2 block`);
    }
    const address = block.getUint32(12, true);
    const size = block.getUint32(16, true);
    mcu.flash.set(data.subarray(offset + 32, offset + 32 + size), address - FLASH_START);
  }
}

function namedPins(specs) {
  return specs.map((spec) => {
    const [name, gpio] = spec.split('=');
    return { name, pin: mcu.gpio[Number(gpio)] };
  });
}

function levelOf(state) {
  if (state === GPIOPinState.High) return 1;
  if (state === GPIOPinState.Low) return 0;
  return null;
}

// A WS2812 chain's data line: bits are told apart by the length of their high pulse.
class WS2812Decoder {
  constructor(name) {
    this.name = name;
    this.bits = [];
    this.roseAt = null;
    this.fellAt = null;
  }

  edge(level) {
    const now = clock.nanos;
    if (level === 1) {
      this.flushIfLatched(now);
      this.roseAt = now;
    } else if (level === 0 && this.roseAt !== null) {
      this.bits.push(now - this.roseAt > WS2812_ONE_NS ? 1 : 0);
      this.roseAt = null;
      this.fellAt = now;
    }
  }

  flushIfLatched(now) {
    if (this.bits.length === 0 || this.roseAt !== null || now - this.fellAt < WS2812_LATCH_NS) {
      return;
    }
    const bytes = [];
    for (let i = 0; i + 8 <= this.bits.length; i += 8) {
      bytes.push(this.bits.slice(i, i + 8).reduce((byte, bit) => (byte << 1) | bit, 0));
    }
    fs.writeSync(events, JSON.stringify({ t: Math.round(this.fellAt), pin: this.name,
      ws2812: bytes, extra_bits: this.bits.length % 8 }) + '\n');
    this.bits = [];
  }
}

// The emulator's own complaints (unimplemented registers, SEV) go to stderr, never the serial line.
mcu.logger = {
  debug() {},
  info() {},
  warn() {},
  error: (component, message) => process.stderr.write(`rp2040js ${component}: ${message}\n`),
};
mcu.loadBootrom(bootromB1);
loadUF2(values.image);
for (const gpio of values.high) {
  mcu.gpio[Number(gpio)].setInputValue(true);
}
for (const { name, pin } of namedPins(values.pin)) {
  pin.addListener((state) => emit({ pin: name, level: levelOf(state) }));
}
const decoders = namedPins(values.ws2812).map(({ name, pin }) => {
  const decoder = new WS2812Decoder(name);
  pin.addListener((state) => decoder.edge(levelOf(state)));
  return decoder;
});
const WATCHDOG_BASE = 0x40058; // the peripherals table is keyed by address >> 12
mcu.peripherals[WATCHDOG_BASE].onWatchdogTrigger = () => {
  emit({ event: 'watchdog' });
  process.exit(3);
};

const cdc = new USBCDC(mcu.usbCtrl);
cdc.onDeviceConnected = () => emit({ event: 'usb' });
cdc.onSerialData = (data) => process.stdout.write(data);
process.stdin.on('data', (chunk) => {
  emit({ event: 'rx', bytes: chunk.length }); // when the host last spoke, for its silence
  for (const byte of chunk) cdc.sendSerialByte(byte);
});
process.stdin.on('end', () => process.exit(0)); // the host side is gone
process.on('exit', () => {
  const wall = performance.now() / 1000;
  process.stderr.write(`rp2040js: ${(clock.nanos / 1e6).toFixed(1)} ms emulated in ${wall.toFixed(1)} s\n`);
});

// Simulator.execute's loop, plus a look at the WS2812 decoders between batches, so a frame is
// reported once its latch time has passed, even if the line never rises again; and a tick, so
// a reader can wait for emulated time to pass while no pin moves.
let lastTick = 0;
function execute() {
  const cycleNanos = 1e9 / mcu.clkSys; // follows the chip's own PLL set-up
  for (let i = 0; i < 200_000; i++) {
    if (mcu.core.waiting) {
      const wait = clock.nanosToNextAlarm;
      clock.tick(wait);
      i += wait / cycleNanos;
    } else {
      clock.tick(mcu.core.executeInstruction() * cycleNanos);
    }
  }
  for (const decoder of decoders) decoder.flushIfLatched(clock.nanos);
  if (clock.nanos - lastTick >= TICK_NS) {
    lastTick = clock.nanos;
    emit({ event: 'tick' });
  }
  setImmediate(execute);
}

mcu.core.PC = FLASH_START; // start at boot stage 2, as rp2040js's own MicroPython runner does
execute();
