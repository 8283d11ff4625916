/**
 * Digest rendering: one compile per send against splicing each reader's links into it.
 * `npm run bench:render` — prints medians and the ratio against a full compile per reader.
 */
import { renderDigest, type DigestNewsletter } from '../src/digests/digest-content.ts';
import { MailTemplates, personalise } from '../src/digests/mail-templates.ts';
import { sampleArticles } from './sample-articles.ts';

const COMPILES = 40;
const BATCHES = 200;
const PER_BATCH = 1000;

const newsletter: DigestNewsletter = {
  slug: 'morning-briefing',
  name: 'Morning Briefing',
  locale: 'en-GB',
  digestSubject: null,
};
const options = {
  issuedAt: new Date('2026-11-26T06:00:00Z'),
  timeZone: 'Europe/London',
  archiveUrl: 'https://news.example.com/newsletters/{newsletter}/{date}',
};
const articles = sampleArticles();

const readerLinks = (n: number) => ({
  unsubscribe_url: `https://news.example.com/unsubscribe/${n.toString(36).padStart(8, '0')}.Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0`,
  preferences_url: `https://news.example.com/preferences/${n.toString(36).padStart(8, '0')}.cXV1eGNvcmdlZ3JhdWx0Zm9vYmFyYmF6`,
});

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
let sink = 0;

const templates = new MailTemplates();
for (let i = 0; i < 3; i++) await renderDigest(templates, newsletter, articles, options);

// 1. The way Broadsheet works: compile once per send. Interleaved with 3., the naive way (a full
// Liquid + mjml2html render for every reader, then that reader's links), so both see the same load.
const compileMs: number[] = [];
const naiveMs: number[] = [];
let digest = await renderDigest(templates, newsletter, articles, options);
for (let i = 0; i < COMPILES; i++) {
  let start = performance.now();
  digest = await renderDigest(templates, newsletter, articles, options);
  compileMs.push(performance.now() - start);

  start = performance.now();
  const rendered = await renderDigest(templates, newsletter, articles, options);
  sink += personalise(rendered, readerLinks(i)).html.length;
  naiveMs.push(performance.now() - start);
}

// 2. ...then splice each reader's links in (timed in batches; one call is below the clock's grain).
const mail = { html: digest.html, text: digest.text };
personalise(mail, readerLinks(0));
const spliceUs: number[] = [];
const spliceAndEncodeUs: number[] = [];
const encodeOnlyUs: number[] = [];
let reader = 1;
for (let b = 0; b < BATCHES; b++) {
  let start = performance.now();
  for (let i = 0; i < PER_BATCH; i++) {
    const personal = personalise(mail, readerLinks(reader++));
    sink += personal.html.length + personal.text.length;
  }
  spliceUs.push(((performance.now() - start) * 1000) / PER_BATCH);
  // The same, with the result written out as UTF-8 bytes as a transport must do anyway.
  start = performance.now();
  for (let i = 0; i < PER_BATCH / 10; i++) {
    const personal = personalise(mail, readerLinks(reader++));
    sink += Buffer.from(personal.html).length;
  }
  spliceAndEncodeUs.push(((performance.now() - start) * 1000) / (PER_BATCH / 10));
  start = performance.now();
  for (let i = 0; i < PER_BATCH / 10; i++) sink += Buffer.from(mail.html + ' ').length;
  encodeOnlyUs.push(((performance.now() - start) * 1000) / (PER_BATCH / 10));
}
// A caller that rebuilds {html, text} for every reader (e.g. from a row) pays a string compare more.
const freshObjectUs: number[] = [];
for (let b = 0; b < BATCHES; b++) {
  const start = performance.now();
  for (let i = 0; i < PER_BATCH; i++) {
    const personal = personalise({ html: mail.html, text: mail.text }, readerLinks(reader++));
    sink += personal.html.length;
  }
  freshObjectUs.push(((performance.now() - start) * 1000) / PER_BATCH);
}
// Splicing cost alone, without making each reader's values: the baseline loop.
const valuesUs: number[] = [];
for (let b = 0; b < BATCHES; b++) {
  const start = performance.now();
  for (let i = 0; i < PER_BATCH; i++) sink += readerLinks(reader++).unsubscribe_url.length;
  valuesUs.push(((performance.now() - start) * 1000) / PER_BATCH);
}

const compile = median(compileMs);
const splice = median(spliceUs) - median(valuesUs);
const spliceRaw = median(spliceUs);
const spliceEncode = median(spliceAndEncodeUs);
const naive = median(naiveMs);
const htmlBytes = Buffer.byteLength(digest.html);
const fmt = (value: number, digits = 2) => value.toFixed(digits);

console.log(`digest of ${articles.length} articles (node ${process.version})`);
console.log(
  `  html size                              ${htmlBytes} bytes (${fmt(htmlBytes / 1024, 1)} KB; limit 90 KB)`,
);
console.log(`  text size                              ${Buffer.byteLength(digest.text)} bytes`);
console.log(`  compile once per send (median of ${COMPILES})   ${fmt(compile)} ms`);
console.log(
  `  personalise per reader (median)        ${fmt(spliceRaw, 3)} µs (${fmt(splice, 3)} µs without making the reader's links)`,
);
console.log(`  personalise, new {html, text} object each time ${fmt(median(freshObjectUs), 3)} µs`);
console.log(
  `  personalise + UTF-8 encode per reader  ${fmt(spliceEncode, 2)} µs (encoding the same html unpersonalised: ${fmt(median(encodeOnlyUs), 2)} µs)`,
);
console.log(`  naive: full render per reader (median of ${COMPILES}) ${fmt(naive)} ms`);
console.log(
  `  ratio naive / personalise              ${Math.round((naive * 1000) / spliceRaw).toLocaleString('en')}×`,
);
console.log(
  `  ratio naive / personalise + encode     ${Math.round((naive * 1000) / spliceEncode).toLocaleString('en')}×`,
);
if (sink === 42) console.log('');
