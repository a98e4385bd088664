(() => {
  const columns = JSON.parse(document.getElementById("training-set-columns-data").textContent);
  const select = document.getElementById("id_training_set");
  const list = document.getElementById("training-set-columns");
  const fill = () => {
    list.replaceChildren(...(columns[select.value] || []).map((name) => {
      const option = document.createElement("option"); option.value = name; return option;
    }));
  };
  select.addEventListener("change", fill);
  fill();
})();
