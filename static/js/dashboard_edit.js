/* The dashboard layout editor (gridstack): tiles move and resize on the 12-column grid; Add places a
   widget at the bottom; Save writes the layout as JSON into the form, which the server checks. Names are
   set as text. */
(function () {
  "use strict";
  const holder = document.querySelector("[data-testid=layout-editor]");
  const form = document.getElementById("dashboard-form");
  if (!holder || !form || !window.GridStack) return;
  const grid = window.GridStack.init(
    { column: parseInt(holder.dataset.columns, 10) || 12, cellHeight: parseInt(holder.dataset.rowPx, 10) || 90, margin: 6, float: false },
    holder,
  );
  holder.addEventListener("click", (event) => {
    const remove = event.target.closest("[data-role=remove]");
    if (remove) grid.removeWidget(remove.closest(".grid-stack-item"));
  });
  document.querySelector("[data-role=add-widget]").addEventListener("click", () => {
    const select = document.getElementById("id_add");
    const option = select.options[select.selectedIndex];
    if (!option) return;
    const item = grid.addWidget({ w: 4, h: 3, autoPosition: true }); // its content is set below, as text
    item.dataset.widgetId = option.value;
    const content = item.querySelector(".grid-stack-item-content");
    content.className = "grid-stack-item-content card edit-tile";
    content.textContent = "";
    const name = document.createElement("strong");
    name.textContent = option.textContent;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link";
    remove.dataset.role = "remove";
    remove.textContent = "Remove";
    content.append(name, " ", remove);
  });
  form.addEventListener("submit", () => {
    const layout = grid.getGridItems().map((el) => ({
      widget: el.dataset.widgetId,
      x: el.gridstackNode.x,
      y: el.gridstackNode.y,
      w: el.gridstackNode.w,
      h: el.gridstackNode.h,
    }));
    document.getElementById("id_layout").value = JSON.stringify(layout);
  });
})();
