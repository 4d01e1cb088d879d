// Peer for bench/validate: the same file parsed with the `yaml` package and checked against the
// same JSON Schema with ajv (structure only: no semantic checks, no positions). Prints the median
// of N in-process runs.  Usage: node bench/validate/ajv-peer.mjs FILE [RUNS]
import { readFileSync } from "node:fs";
import Ajv from "ajv";
import { parse } from "yaml";

const [file, runsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 50);
const text = readFileSync(file, "utf8");
const schema = JSON.parse(readFileSync(new URL("../../schemas/pipeline.schema.json", import.meta.url)));
const ajv = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true });
const validate = ajv.compile(schema);
const times = [];
let valid = false;
for (let i = 0; i < runs; i++) {
  const t0 = process.hrtime.bigint();
  valid = validate(parse(text, { uniqueKeys: true }));
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
times.sort((a, b) => a - b);
console.log(`ajv peer (yaml parse + schema only): ${runs} runs, median ${times[runs >> 1].toFixed(2)} ms, ` +
            `p90 ${times[Math.floor(runs * 0.9)].toFixed(2)} ms, valid ${valid}`);
