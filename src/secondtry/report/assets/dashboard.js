// The transcript browser: pick a round and set, then an outcome; transcripts that do not match are hidden.
(() => {
  const browser = document.getElementById("transcripts");
  if (!browser) return;
  const select = browser.querySelector("select");
  const buttons = [...browser.querySelectorAll("button[data-outcome]")];
  const blocks = [...browser.querySelectorAll(".tx-block")];
  const count = browser.querySelector(".tx-count");
  let outcome = "all";

  function show() {
    const block = blocks.find((b) => b.dataset.block === select.value);
    blocks.forEach((b) => { b.hidden = b !== block; });
    const rows = block ? [...block.querySelectorAll(".tx")] : [];
    rows.forEach((r) => { r.hidden = outcome !== "all" && r.dataset.outcome !== outcome; });
    for (const b of buttons) {
      const mine = b.dataset.outcome === "all" ? rows : rows.filter((r) => r.dataset.outcome === b.dataset.outcome);
      b.querySelector(".n").textContent = String(mine.length);
      b.setAttribute("aria-pressed", String(b.dataset.outcome === outcome));
    }
    count.textContent = `${rows.filter((r) => !r.hidden).length} shown`;
  }

  select.addEventListener("change", show);
  buttons.forEach((b) => b.addEventListener("click", () => { outcome = b.dataset.outcome; show(); }));
  show();
})();
