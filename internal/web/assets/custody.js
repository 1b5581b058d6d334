// custody's progressive enhancement: every page works without it.

// Copy buttons: <button type="button" class="copy" data-copy="text" hidden>.
// They stay hidden without script (the text next to them is selectable).
// What happened is also said in a polite live region, so a screen reader
// hears it (a button's changed label alone is not announced).
function enableCopyButtons(root) {
  const buttons = root.querySelectorAll("button.copy[data-copy]");
  if (buttons.length === 0) return;
  const status = document.createElement("p");
  status.className = "visually-hidden copy-status";
  status.setAttribute("role", "status");
  (document.querySelector("main") || document.body).append(status);
  for (const b of buttons) {
    b.hidden = false;
    b.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(b.dataset.copy);
        const label = b.textContent;
        b.textContent = "Copied";
        status.textContent = "Copied to the clipboard.";
        setTimeout(() => { b.textContent = label; }, 1500);
      } catch {
        b.textContent = "Select and copy";
        status.textContent = "Copying is not allowed here: select the text and copy it.";
      }
    });
  }
}

enableCopyButtons(document);
