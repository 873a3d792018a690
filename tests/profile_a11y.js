(() => {
  /* Accessibility rules checked on the live page (tests/profile.rs). The
     result is a list of problems; empty means every rule held. No line
     comments: the test joins the lines into one. */
  const problems = [];
  const name = (el) => (el.getAttribute("aria-label") || el.textContent || el.value || "").trim();
  if (!document.documentElement.lang) problems.push("html has no lang");
  if (!document.title.trim()) problems.push("page has no title");
  if (document.querySelectorAll("main").length !== 1) problems.push("not exactly one main landmark");
  if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
  let last = 0;
  document.querySelectorAll("h1, h2, h3, h4, h5, h6").forEach((h) => {
    const level = Number(h.tagName[1]);
    if (last && level > last + 1) problems.push("heading level skipped at " + name(h));
    last = level;
    if (!name(h)) problems.push("empty heading");
  });
  document.querySelectorAll("input, select, textarea").forEach((el) => {
    if (el.type === "hidden") return;
    const labelled = (el.id && document.querySelector('label[for="' + el.id + '"]')) || el.getAttribute("aria-label") || el.closest("label");
    if (!labelled) problems.push("field without a label: " + (el.id || el.name));
  });
  document.querySelectorAll("button, a[href]").forEach((el) => {
    if (!name(el)) problems.push("control without a name: " + el.outerHTML.slice(0, 80));
    if (el.tabIndex < 0) problems.push("control out of the tab order: " + name(el));
  });
  document.querySelectorAll("table").forEach((t) => {
    if (!t.querySelector("caption")) problems.push("table without a caption");
    t.querySelectorAll("th").forEach((th) => {
      if (!th.getAttribute("scope")) problems.push("th without scope: " + name(th));
    });
  });
  document.querySelectorAll("section").forEach((s) => {
    const by = s.getAttribute("aria-labelledby");
    if (!by || !document.getElementById(by)) problems.push("section without a heading label: " + s.id);
  });
  document.querySelectorAll("svg, img, [role=img]").forEach((el) => {
    if (el.closest("[role=img][aria-label]")) return;
    if (!el.getAttribute("alt") && !el.getAttribute("aria-label")) problems.push("image without a text alternative");
  });
  if (!document.querySelector("[aria-live]")) problems.push("no live region for messages");
  const ids = {};
  document.querySelectorAll("[id]").forEach((el) => {
    if (ids[el.id]) problems.push("duplicate id " + el.id);
    ids[el.id] = true;
  });
  return problems;
})()
