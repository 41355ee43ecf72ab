// node shot.mjs URL OUT.png: open URL in headless Chromium (the npm package @sparticuz/chromium,
// which ships the browser itself), wait for it to load, write a screenshot, and print the page's
// title, its first heading and how many code blocks it rendered, as JSON.
import chromium from "@sparticuz/chromium";
import puppeteer from "puppeteer-core";

const [url, out] = process.argv.slice(2);
const browser = await puppeteer.launch({args: chromium.args, executablePath: await chromium.executablePath(),
                                        headless: true});
try {
  const page = await browser.newPage();
  await page.setViewport({width: 1200, height: 900});
  await page.goto(url, {waitUntil: "load"});
  const title = await page.title();
  const h1 = await page.$eval("h1", (e) => e.textContent.replace("¶", "").trim());
  const codeBlocks = await page.$$eval("pre code", (blocks) => blocks.length);
  await page.screenshot({path: out});
  console.log(JSON.stringify({title, h1, codeBlocks}));
} finally {
  await browser.close();
}
