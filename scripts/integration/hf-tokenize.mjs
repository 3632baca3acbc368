// hf-tokenize.mjs: the token ids that Hugging Face's own tokenizer gives
// for some texts, as JSON, for the tokenizer package's integration test.
//
// usage: node hf-tokenize.mjs [--no-plain | --decode] TOKENIZER.json TEXTS.json
//
// TEXTS.json is a JSON array of strings. The tokenizer_config.json beside
// TOKENIZER.json is read if present. For each text it prints
//
//   {"ids": [...],      encode(text) (add_special_tokens: true)
//    "plain": [...],    encode(text, {add_special_tokens: false})
//    "decoded": "..."}  decode(ids) ("" for no ids, which decode refuses)
//
// as one JSON array on stdout. With --no-plain, "plain" is left out (it
// costs a second encode; the real-text corpus of some megabytes skips it).
// With --decode, TEXTS.json is a JSON array of arrays of token ids instead,
// and for each it prints
//
//   {"decoded": "...",  decode(ids)
//    "skipped": "..."}  decode(ids, {skip_special_tokens: true})
//
// ("" for no ids).
// The tokenizer is @huggingface/tokenizers (pure JS, offline), from
// $QUANTKIT_HFTOKENIZERS_NODE_MODULES.
import {readFileSync, existsSync} from "node:fs";
import {join, dirname} from "node:path";
import {pathToFileURL} from "node:url";

const args = process.argv.slice(2);
const noPlain = args[0] === "--no-plain";
const decodeOnly = args[0] === "--decode";
if (noPlain || decodeOnly) args.shift();
const [tokPath, textsPath] = args;
if (!tokPath || !textsPath || args.length > 2) {
    process.stderr.write("usage: node hf-tokenize.mjs [--no-plain | --decode] TOKENIZER.json TEXTS.json\n");
    process.exit(2);
}
const nm = process.env.QUANTKIT_HFTOKENIZERS_NODE_MODULES;
if (!nm) {
    process.stderr.write("hf-tokenize.mjs: set QUANTKIT_HFTOKENIZERS_NODE_MODULES to a node_modules with @huggingface/tokenizers\n");
    process.exit(2);
}
const {Tokenizer} = await import(pathToFileURL(join(nm, "@huggingface/tokenizers/dist/tokenizers.mjs")).href);
const cfgPath = join(dirname(tokPath), "tokenizer_config.json");
const cfg = existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, "utf8")) : {};
const tok = new Tokenizer(JSON.parse(readFileSync(tokPath, "utf8")), cfg);
const texts = JSON.parse(readFileSync(textsPath, "utf8"));
// Encodes (or decodes) each input; stdout is written once, at the end, and
// node exits when it is flushed.
const out = texts.map((x) => decodeOnly ? decodeIDs(x) : encodeText(x));
process.stdout.write(JSON.stringify(out) + "\n");

function decodeIDs(ids) {
    if (ids.length === 0) return {decoded: "", skipped: ""};
    return {decoded: tok.decode(ids), skipped: tok.decode(ids, {skip_special_tokens: true})};
}

function encodeText(text) {
    const ids = tok.encode(text).ids;
    const decoded = ids.length ? tok.decode(ids) : "";
    if (noPlain) return {ids, decoded};
    const plain = tok.encode(text, {add_special_tokens: false}).ids;
    return {ids, plain, decoded};
}
