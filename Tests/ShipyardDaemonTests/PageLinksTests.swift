import Testing

@testable import ShipyardWeb

/// Links the pages make from what the config and the record hold.
@Suite struct PageLinksTests {
    @Test func aCommitLinksToItsUpstreamsWebHostOnlyForHTTPS() {
        let commit = "3f8b9a0fd640278a9c1e4b2d7a6f5e4d3c2b1a09"
        #expect(Pages.commitLink(upstream: "https://github.com/acme/fulltour.git", commit: commit) == "https://github.com/acme/fulltour/commit/\(commit)")
        #expect(Pages.commitLink(upstream: "https://gitlab.example.com/ops/deploy/fulltour/", commit: commit)
            == "https://gitlab.example.com/ops/deploy/fulltour/commit/\(commit)")
        // Credentials (shown as *** by the status) never reach a link.
        #expect(Pages.commitLink(upstream: "https://***@git.example.com/acme/fulltour.git", commit: commit) == "https://git.example.com/acme/fulltour/commit/\(commit)")
        #expect(Pages.commitLink(upstream: "ssh://git@git.example.com/acme/fulltour.git", commit: commit) == nil)
        #expect(Pages.commitLink(upstream: "file:///srv/git/fulltour.git", commit: commit) == nil)
        #expect(Pages.commitLink(upstream: "https://git.example.com/", commit: commit) == nil)
        #expect(Pages.commitLink(upstream: "https://git.example.com/acme/x.git", commit: "\"><script>") == nil)
    }

    @Test func imagesShowTheirNameAndTag() {
        #expect(Pages.shortImage("ghcr.io/podtato-head/podtatoserver:v0.2.0") == "podtatoserver:v0.2.0")
        #expect(Pages.shortImage("nginx:1.27") == "nginx:1.27")
    }
}
