/* labnb: the network picture as text (templates/lab.html, #network's Text view), for a screen reader, a
 * keyboard, or a reader who wants the addresses to copy: a table per namespace of its interfaces, their
 * kind, state and addresses and what each is linked to, from the same JSON the picture is drawn from
 * (docs/network.md). It needs no Cytoscape. Every name and address comes from the learner's lab host, whose
 * root they are: it goes in as text (textContent), never as markup. */
(function () {
  "use strict";
  if (!window.labnb) return;

  function el(tag, text) {
    var node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function row(cells, header) {
    var tr = el("tr");
    cells.forEach(function (text, n) {
      var cell = el(header || n === 0 ? "th" : "td", text);
      if (header) cell.scope = "col";
      else if (n === 0) cell.scope = "row";
      tr.appendChild(cell);
    });
    return tr;
  }

  /* What each interface is linked to, in words, by its id: its veth peer (and where that is), its bridge,
   * the ports of a bridge, or the server's note on a peer it could not show. */
  function linksOf(pic) {
    var where = {}, said = {};
    pic.namespaces.forEach(function (ns) {
      ns.interfaces.forEach(function (i) { where[i.id] = { iface: i, ns: ns }; });
    });
    function say(id, text) { (said[id] = said[id] || []).push(text); }
    pic.links.forEach(function (link) {
      var a = where[link.source], b = where[link.target];
      if (!a || !b) return;
      if (link.kind === "veth") {
        say(link.source, "veth pair with " + b.iface.name + (a.ns === b.ns ? "" : " in " + b.ns.label));
        say(link.target, "veth pair with " + a.iface.name + (a.ns === b.ns ? "" : " in " + a.ns.label));
      } else if (link.kind === "lab") {   // a host's ens33 and its port of the lab network
        say(link.source, "the lab network");
        say(link.target, a.iface.name + " of " + a.ns.host);
      } else {   // a bridge port: source the port, target its bridge
        say(link.source, "port of bridge " + b.iface.name);
        say(link.target, "bridge of " + a.iface.name);
      }
    });
    Object.keys(where).forEach(function (id) {
      if (where[id].iface.peer_note) say(id, where[id].iface.peer_note);
    });
    return said;
  }

  /* A set of hosts: each host, its lab host and what listens on it, before the tables. */
  function hostList(hosts) {
    var list = el("ul");
    list.className = "network-hosts";
    hosts.forEach(function (h) { list.appendChild(el("li", h.label + " (lab host " + h.lab_host + ")")); });
    return list;
  }

  /* Draw `pic` into `box` as text, replacing what was there. */
  function render(box, pic) {
    var said = linksOf(pic);
    var parts = pic.namespaces.map(function (ns) {
      var table = el("table");
      table.className = "network-table";
      table.appendChild(el("caption", ns.host ? ns.host + ": " + ns.label : ns.label));
      var head = el("thead");
      head.appendChild(row(["Interface", "Kind", "State", "Addresses", "Linked to"], true));
      table.appendChild(head);
      var body = el("tbody");
      ns.interfaces.forEach(function (i) {
        body.appendChild(row([i.name, i.kind, i.state, i.addresses.join(", ") || "none",
                              (said[i.id] || []).join("; ") || "nothing"]));
      });
      if (!ns.interfaces.length) {
        var none = el("td", "no interfaces shown");
        none.colSpan = 5;
        body.appendChild(el("tr")).appendChild(none);
      }
      table.appendChild(body);
      return table;
    });
    if (!parts.length) parts = [el("p", "No network namespaces were read.")];
    if (pic.hosts) parts.unshift(hostList(pic.hosts));
    box.replaceChildren.apply(box, parts);
  }

  window.labnb.networkText = { render: render };
})();
