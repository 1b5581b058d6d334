// custody's progressive enhancement: every page works without it.

// Copy buttons: <button type="button" class="copy" data-copy="text" hidden>.
// They stay hidden without script (the text next to them is selectable).
function enableCopyButtons(root) {
  for (const b of root.querySelectorAll("button.copy[data-copy]")) {
    b.hidden = false;
    b.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(b.dataset.copy);
        const label = b.textContent;
        b.textContent = "Copied";
        setTimeout(() => { b.textContent = label; }, 1500);
      } catch {
        b.textContent = "Select and copy";
      }
    });
  }
}

enableCopyButtons(document);
