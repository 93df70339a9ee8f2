"""fivefold.crawl."""
