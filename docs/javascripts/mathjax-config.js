// MathJax 3 for pymdownx.arithmatex (generic mode) and for the notebooks' Markdown cells (mkdocs-jupyter).
// The MathJax file itself (javascripts/mathjax/tex-svg.js) is copied into the site by docs/hooks.py from the
// django-static-mathjax package, so the math renders with no network.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown|jp-RenderedHTMLCommon",
  },
  svg: { fontCache: "global" },
};

// Material's instant navigation swaps the page without reloading MathJax: typeset each new page.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.typesetPromise) {
      const output = MathJax.startup.output;
      if (output.clearCache) output.clearCache(); // CHTML output
      if (output.clearFontCache) output.clearFontCache(); // SVG output
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
