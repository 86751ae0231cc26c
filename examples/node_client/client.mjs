// Reference RigStyle client in Node.js (docs/protocol.md): one refine_frame request, one reply.
//
//   node client.mjs ADDRESS BUNDLE_DIR OUT_DIR [--timeout SECONDS] [--token TOKEN]
//
// BUNDLE_DIR/bundle.json names the shot, the frame and its tensors; each tensor's raw little-endian,
// C-ordered bytes sit in the file it names:
//   {"shot": "s1", "frame": 1,
//    "tensors": [{"name": "beauty", "dtype": "float32", "shape": [256, 256, 3], "file": "beauty.bin"}, ...]}
// The reply's tensors are written to OUT_DIR/<name>.bin and its header to OUT_DIR/reply.json.
// Exit codes: 0 result, 3 the backend answered with an error (printed), 4 no answer in time.

import { readFile, writeFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { encode, decode } from "@msgpack/msgpack";
import { Dealer } from "zeromq";

const PROTOCOL_VERSION = 2; // written against version 2; version 3 servers accept it (docs/protocol.md, section 3)
const ITEM_SIZE = { uint8: 1, uint16: 2, int32: 4, int64: 8, float16: 2, float32: 4, float64: 8 };

function usage() {
  console.error("usage: node client.mjs ADDRESS BUNDLE_DIR OUT_DIR [--timeout SECONDS] [--token TOKEN]");
  process.exit(2);
}

async function readBundle(dir) {
  const bundle = JSON.parse(await readFile(path.join(dir, "bundle.json"), "utf8"));
  const specs = [];
  const frames = [];
  for (const tensor of bundle.tensors) {
    const bytes = await readFile(path.join(dir, tensor.file));
    const expected = tensor.shape.reduce((a, b) => a * b, 1) * ITEM_SIZE[tensor.dtype];
    if (bytes.length !== expected) {
      throw new Error(`${tensor.name}: ${tensor.file} has ${bytes.length} bytes, ${expected} expected`);
    }
    specs.push({ name: tensor.name, dtype: tensor.dtype, shape: tensor.shape });
    frames.push(bytes);
  }
  return { bundle, specs, frames };
}

async function main() {
  const args = process.argv.slice(2);
  const timeoutAt = args.indexOf("--timeout");
  const timeout = timeoutAt >= 0 ? Number(args.splice(timeoutAt, 2)[1]) : 120;
  const tokenAt = args.indexOf("--token");
  const token = tokenAt >= 0 ? args.splice(tokenAt, 2)[1] : process.env.RIGSTYLE_TOKEN;
  if (args.length !== 3) usage();
  const [address, bundleDir, outDir] = args;
  const { bundle, specs, frames } = await readBundle(bundleDir);

  const socket = new Dealer({ receiveTimeout: timeout * 1000, linger: 0 });
  socket.connect(address);
  const header = {
    rigstyle: PROTOCOL_VERSION,
    type: "refine_frame",
    id: 1,
    fields: { shot: bundle.shot, frame: bundle.frame },
    tensors: specs,
  };
  if (token) header.auth = token; // required when the backend was started with a token
  await socket.send([Buffer.from(encode(header)), ...frames]);

  let reply;
  try {
    reply = await socket.receive();
  } catch (error) {
    console.error(`no answer from ${address} within ${timeout} s`);
    process.exit(4);
  } finally {
    socket.close();
  }
  const [rawHeader, ...payloads] = reply;
  const answer = decode(rawHeader);
  if (answer.type === "error") {
    console.error(`backend error [${answer.fields.code}]: ${answer.fields.message}`);
    process.exit(3);
  }
  await mkdir(outDir, { recursive: true });
  for (const [index, spec] of answer.tensors.entries()) {
    await writeFile(path.join(outDir, `${spec.name}.bin`), payloads[index]);
  }
  await writeFile(path.join(outDir, "reply.json"), JSON.stringify(answer, null, 2));
  const metrics = answer.fields.metrics ?? {};
  console.log(`frame ${answer.fields.frame}: ${answer.tensors.map((t) => `${t.name}${JSON.stringify(t.shape)}`).join(", ")}`
    + ` skin loss ${metrics.skin_loss_init?.toFixed(4)} -> ${metrics.skin_loss_final?.toFixed(4)}`);
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
