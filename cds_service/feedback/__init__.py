"""What clinicians did with the cards: feedback requests, the store, the recorder and the export."""
