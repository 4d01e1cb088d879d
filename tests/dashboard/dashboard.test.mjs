// The dashboard in a real browser (issue 6), against a real `tollgate serve` and the test Git host
// (tests/promote/world.mjs):
//   (1) a pipeline dev -> qa, qa gated by an approval from bob. The page is open before the change
//       is merged; the run appears, qa shows `open`, bob approves through the API (an operator
//       token acting as bob), qa turns `promoted` — all without a reload. The run view shows the
//       gates (bob's approval), the PR links and the audit timeline. A phone-sized viewport
//       (390x844) shows both views without horizontal overflow.
//   (2) with anonymous_read off the page asks for a token, refuses a wrong one with the server's
//       message, and with a read token shows the data and the live stream.
// Neither test may log a console error or warning (other than the 401s of (2)) or throw.
// Screenshots: ${TOLLGATE_ARTIFACTS:-build/test-artifacts}/dashboard-*.png.
//
//   TOLLGATE_BIN=$PWD/build/service/tollgate node --test tests/dashboard/
import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

import { chromium } from "playwright-core";

import { ROOT, SKIP as NO_BINARY, diagnose, eventually, mergeSourceChange, startWorld, tempDir } from "../promote/world.mjs";

const CHROMIUM = "/usr/bin/chromium";
const SKIP =
  NO_BINARY || (fs.existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: install Debian's chromium (deploy/install-deps.sh --tests)`);
const ARTIFACTS = path.resolve(ROOT, process.env.TOLLGATE_ARTIFACTS || "build/test-artifacts");

const VALUES_EDIT = `        edits:
          - file: apps/app/values.yaml
            set: { image.tag: "{{release.version}}" }
`;

// alice merges the change (mergeSourceChange), so she is the release's author; bob approves.
const PIPELINE = `version: 1
pipelines:
  - name: app
    on:
      merged:
        branches: [main]
    release:
      version: "{{source.short_sha}}"
    stages:
      - name: dev
        repo: acme/env-dev
${VALUES_EDIT}        merge: auto
        gates:
          checks: none
      - name: qa
        after: [dev]
        repo: acme/env-qa
${VALUES_EDIT}        merge: auto
        gates:
          checks: none
          approvals:
            count: 1
            from: [bob]
`;

// A token file in its own temporary directory; returns [token, file].
function tokenFile(t, name) {
  const token = `${name}-${crypto.randomBytes(16).toString("hex")}`;
  const file = path.join(tempDir(t), `${name}.token`);
  fs.writeFileSync(file, token + "\n");
  return [token, file];
}

async function launch(t) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  t.after(() => browser.close());
  return browser;
}

// A page whose console errors and warnings and uncaught exceptions land in `problems`, except
// messages matching `expected`.
async function openPage(browser, problems, name, options, expected = null) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.on("console", (m) => {
    if ((m.type() === "error" || m.type() === "warning") && !expected?.test(m.text())) problems.push(`${name}: console ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${name}: uncaught ${e.message}`));
  return page;
}

// A screenshot of one element (an artifact, not a check). The live view may replace the element
// while it is taken (an event that arrives after the run ended re-renders the pipeline): Playwright
// then finds the old node detached ("not attached to the DOM") or, caught mid-render, not visible
// ("Node is either not visible or not an HTMLElement"; seen in the ASan CI stage). Take it again
// from the element now there, once that is visible.
async function screenshotOf(locator, file) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await locator.screenshot({ path: file });
    } catch (e) {
      if (attempt >= 5 || !/not attached to the DOM|not visible|not an HTMLElement/.test(e.message)) throw e;
      await new Promise((resolve) => setTimeout(resolve, 200));
      await locator.waitFor({ state: "visible", timeout: 5_000 }).catch(() => {});
    }
  }
}

// Waits for `selector` on `page`; on a timeout, fails with what tollgate was doing and a screenshot.
async function see(page, tollgate, selector, what, ms = 30_000) {
  try {
    await page.locator(selector).first().waitFor({ timeout: ms });
  } catch {
    const shot = path.join(ARTIFACTS, "dashboard-failure.png");
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    assert.fail(`the page did not show ${what} within ${ms} ms (${selector}); screenshot: ${shot}\n${diagnose(tollgate)}`);
  }
}

const overflow = (page) => page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));

test("(1) the dashboard follows a run live: merge, qa open, approval by API, qa promoted; run view, timeline, phone layout", { skip: SKIP, timeout: 180_000 }, async (t) => {
  const [ops, opsFile] = tokenFile(t, "ops");
  const world = await startWorld(t, {
    pipeline: PIPELINE,
    envRepos: ["env-dev", "env-qa"],
    api: { anonymous_read: true, tokens: [{ name: "ops", role: "operator", token_file: opsFile, login: "bob" }] },
  });
  const { tollgate } = world;
  const base = `http://127.0.0.1:${tollgate.port}/`;
  const browser = await launch(t);
  const problems = [];
  const page = await openPage(browser, problems, "desktop", { viewport: { width: 1280, height: 900 } });

  await page.goto(base);
  await see(page, tollgate, "[data-testid=no-pipelines]", "the empty pipelines page");
  // Set once: a reload or a navigation away would drop it.
  const marker = crypto.randomUUID();
  await page.evaluate((m) => (window.__dashboardMarker = m), marker);
  await see(page, tollgate, "[data-testid=live][data-state=live]", "the live indicator connected", 15_000);

  await mergeSourceChange(world.admin);
  await see(page, tollgate, "[data-testid=pipeline][data-pipeline=app] [data-testid=run-row]", "the new run");
  const runId = await page.getAttribute("[data-testid=run-row]", "data-run");
  await see(page, tollgate, "[data-testid=stage-node][data-stage=dev][data-status=promoted]", "dev promoted", 60_000);
  await see(page, tollgate, "[data-testid=stage-node][data-stage=qa][data-status=open]", "qa open (waiting for its approval)", 60_000);

  const approve = await fetch(`${base}api/v1/runs/${runId}/stages/qa/approve`, {
    method: "POST",
    headers: { authorization: `Bearer ${ops}`, "content-type": "application/json", "idempotency-key": `dashboard-${runId}` },
    body: JSON.stringify({ reason: "looks good" }),
  });
  assert.equal(approve.status, 200, `POST .../stages/qa/approve: ${approve.status} ${await approve.text()}`);

  await see(page, tollgate, "[data-testid=stage-node][data-stage=qa][data-status=promoted]", "qa promoted", 60_000);
  await see(page, tollgate, `[data-testid=run-row][data-run="${runId}"][data-status=succeeded]`, "the run succeeded");
  const run = await (await fetch(`${base}api/v1/runs/${runId}`)).json();
  assert.equal(await page.textContent("[data-testid=stage-node][data-stage=qa] [data-testid=stage-version]"), run.version, "qa shows the run's version");
  assert.equal(await page.evaluate(() => window.__dashboardMarker), marker, "the page was updated in place, never reloaded");
  await screenshotOf(page.locator("[data-testid=pipeline][data-pipeline=app]"), path.join(ARTIFACTS, "dashboard-pipeline.png"));

  // The run view: gates with bob's approval, the PR links, the timeline.
  await page.click(`[data-testid=run-row][data-run="${runId}"] .run-link`);
  const qa = `[data-testid=run][data-run="${runId}"] [data-testid=run-stage][data-stage=qa]`;
  await see(page, tollgate, `${qa}[data-status=promoted]`, "the run view's qa stage");
  assert.equal(await page.textContent(`${qa} [data-testid=approvals-count]`), "1 of 1");
  assert.equal(await page.locator(`${qa} [data-testid=approvals] [data-login=bob]`).count(), 1, "bob's approval is listed");
  assert.match(await page.textContent(`${qa} [data-testid=approvals] [data-login=bob]`), /bob.*(ago|just now)/, "with when he gave it");
  const qaPr = run.stages.find((s) => s.name === "qa").pr;
  assert.ok(qaPr?.url, `the API gives qa's PR: ${JSON.stringify(run.stages)}`);
  assert.equal(await page.getAttribute(`${qa} a[href="${qaPr.url}"]`, "href"), qaPr.url, "qa's PR is linked");
  // One timeline entry per audit entry (polled: an entry written after the view was drawn redraws it).
  let timeline = [];
  let audit = null;
  await eventually("one timeline entry per audit entry", async () => {
    audit = await (await fetch(`${base}api/v1/audit?run=${runId}&limit=500`)).json();
    timeline = await page.locator("[data-testid=timeline] [data-testid=timeline-entry]").allTextContents();
    return timeline.length === audit.entries.length;
  }, { ms: 10_000 }).catch(() => {}); // the assertion below says what differs
  assert.equal(timeline.length, audit.entries.length, `one timeline entry per audit entry:\n${timeline.join("\n")}`);
  assert.ok(
    timeline.some((line) => /qa/.test(line) && /bob/.test(line) && /approved/.test(line)),
    `the timeline shows bob's approval:\n${timeline.join("\n")}`,
  );
  assert.equal(await page.evaluate(() => window.__dashboardMarker), marker, "opening the run view did not reload the page");
  await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-run.png"), fullPage: true });

  // A phone: both views fit the width.
  const phone = await openPage(browser, problems, "phone", { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, colorScheme: "dark" });
  await phone.goto(base);
  await see(phone, tollgate, "[data-testid=stage-node][data-stage=qa][data-status=promoted]", "the pipeline on a phone");
  let size = await overflow(phone);
  assert.ok(size.scrollWidth <= size.innerWidth, `the pipelines view overflows a phone: ${JSON.stringify(size)}`);
  await phone.screenshot({ path: path.join(ARTIFACTS, "dashboard-phone-pipelines.png"), fullPage: true });
  await phone.goto(`${base}#/runs/${runId}`);
  await see(phone, tollgate, "[data-testid=timeline]", "the run view on a phone");
  size = await overflow(phone);
  assert.ok(size.scrollWidth <= size.innerWidth, `the run view overflows a phone: ${JSON.stringify(size)}`);
  await phone.screenshot({ path: path.join(ARTIFACTS, "dashboard-phone-run.png"), fullPage: true });

  assert.deepEqual(problems, [], "no console errors or warnings, no uncaught exceptions");
});

test("(2) without anonymous reads the dashboard asks for a token, refuses a wrong one, and works with a read token", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const [viewer, viewerFile] = tokenFile(t, "viewer");
  const world = await startWorld(t, {
    pipeline: PIPELINE,
    envRepos: ["env-dev", "env-qa"],
    api: { anonymous_read: false, tokens: [{ name: "viewer", role: "read", token_file: viewerFile }] },
  });
  const { tollgate } = world;
  const base = `http://127.0.0.1:${tollgate.port}/`;
  const browser = await launch(t);
  const problems = [];
  // Chromium logs every 401 answer as a failed resource load: those are this test's point.
  const page = await openPage(browser, problems, "auth", { viewport: { width: 1024, height: 800 } }, /status of 401/);

  await page.goto(base);
  await see(page, tollgate, "[data-testid=auth-form]", "the token form");
  await see(page, tollgate, "[data-testid=live][data-state=auth]", "the live indicator waiting for a token");
  assert.match(await page.textContent("[data-testid=auth-form]"), /needs a token/, "the server's reason is shown");

  await page.fill("[data-testid=auth-form] input", "not-a-token");
  await page.click("[data-testid=auth-form] button[type=submit]");
  await page.locator("[data-testid=auth-form]", { hasText: "unknown token" }).waitFor({ timeout: 10_000 });

  await page.fill("[data-testid=auth-form] input", viewer);
  await page.click("[data-testid=auth-form] button[type=submit]");
  await see(page, tollgate, "[data-testid=no-pipelines]", "the pipelines page after signing in");
  await see(page, tollgate, "[data-testid=live][data-state=live]", "the live stream with the token", 15_000);
  assert.equal(await page.evaluate(() => localStorage.getItem("tollgate.token")), viewer, "the token is kept in local storage");

  await mergeSourceChange(world.admin);
  await see(page, tollgate, "[data-testid=stage-node][data-stage=qa][data-status=open]", "the run, live, with the token", 60_000);

  assert.deepEqual(problems, [], "no console errors or warnings other than the 401s, no uncaught exceptions");
});
