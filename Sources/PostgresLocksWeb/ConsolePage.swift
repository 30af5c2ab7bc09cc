/// What a page handler produces: its title and its main content.
struct ConsolePage {
    var title: String
    var main: HTML
}
